"""hama's frame posteriors mapped onto a phone model's tokens: the teacher of frame-level distillation (issue 13).

hama (PyPI, Apache-2.0; :mod:`asr.peers.hama`) is a multilingual IPA phone CTC model trained on real speech. Its
engine returns log-probabilities over 191 tokens every 20 ms (320 samples at 16 kHz). A phone model here has a
blank and the 39 CMUdict phones (and ``|`` when it marks word boundaries). :func:`token_map` says where each
hama token's probability goes:

- an IPA phone :data:`~asr.peers.hama.IPA_TO_ARPABET` maps goes to its (first) ARPAbet phone: ``eə`` -> ``EH R``
  gives its mass to EH (a frame is one phone; the second phone of a diphthong spelling is the next frames');
- hama's blank, its padding/special tokens, diacritics, tones, length marks and punctuation
  (:data:`~asr.peers.hama.NOT_PHONES`) go to our blank; its word boundary (``<wb>``, and the space) to ``|`` when
  the model has one, else to blank;
- every other token (the Korean and Chinese symbols of its vocabulary) goes to blank as well: hama gives them
  next to nothing on English audio, and the share they took is reported (:attr:`TeacherPosteriors.unmapped_mass`).

The mapped posteriors sum to one in every frame; they are stored as float16 log-probabilities
(:mod:`asr.distill.store`), at hama's 20 ms frames, and put on the student's frames during training
(:mod:`asr.distill.loss`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asr.peers.hama import IPA_TO_ARPABET, NOT_PHONES, load_hama

__all__ = ["FRAME_SECONDS", "TeacherPosteriors", "HamaTeacher", "token_map"]

FRAME_SECONDS = 0.02  # hama's output frame: a 160-sample STFT hop subsampled by 2, at 16 kHz
SAMPLE_RATE = 16000
BLANK, WORD_BOUNDARY = "<blank>", "|"
_HAMA_WORD_BOUNDARIES = ("<wb>", " ")


def token_map(hama_tokens: Sequence[str], tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(index, unmapped)``: ``index[i]`` is the student token that hama token ``i``'s probability goes to;
    ``unmapped[i]`` is True for the tokens that go to blank only because nothing maps them (foreign symbols)."""
    ids = {t: i for i, t in enumerate(tokens)}
    if BLANK not in ids:
        raise ValueError(f"the student's tokens have no {BLANK!r}: {list(tokens)[:5]}...")
    missing = sorted({v[0] for v in IPA_TO_ARPABET.values()} - set(ids))
    if missing:
        raise ValueError(f"the student's tokens lack the phones {missing}: distillation from hama needs a phone model")
    boundary = ids.get(WORD_BOUNDARY, ids[BLANK])
    index = np.empty(len(hama_tokens), dtype=np.int64)
    unmapped = np.zeros(len(hama_tokens), dtype=bool)
    for i, t in enumerate(hama_tokens):
        if t in IPA_TO_ARPABET:
            index[i] = ids[IPA_TO_ARPABET[t][0]]
        elif t in _HAMA_WORD_BOUNDARIES:
            index[i] = boundary
        else:
            index[i] = ids[BLANK]
            unmapped[i] = t not in NOT_PHONES
    return index, unmapped


@dataclass(frozen=True)
class TeacherPosteriors:
    """One utterance's teacher output on the student's tokens."""

    log_probs: np.ndarray  # [frames, len(tokens)] float32 natural-log posteriors, FRAME_SECONDS apart
    unmapped_mass: float  # mean per-frame probability hama gave to tokens nothing maps (sent to blank)


class HamaTeacher:
    """hama's posteriors on a student's phone tokens, for 16 kHz mono float32 audio."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = list(tokens)
        self._model = load_hama()
        session = self._model.session
        self._inputs = [i.name for i in session.get_inputs()]
        self._outputs = [o.name for o in session.get_outputs()]
        if self._inputs[:2] != ["waveform", "waveform_lengths"] or self._outputs[:2] != ["log_probs", "out_lengths"]:
            raise RuntimeError(f"hama's engine has inputs {self._inputs} and outputs {self._outputs}; expected "
                               "waveform/waveform_lengths -> log_probs/out_lengths (hama 1.7.0)")  # fmt: skip
        self.hama_tokens = list(self._model.decoder_tokens)
        self._index, self._unmapped = token_map(self.hama_tokens, self.tokens)

    @property
    def setup(self) -> dict:
        """What the stored posteriors depend on: hama's version, its tokens, the mapping and the student's tokens."""
        mapping = json.dumps([self.hama_tokens, self._index.tolist(), self.tokens], ensure_ascii=False)
        return {
            "teacher": "hama",
            "hama_version": importlib.metadata.version("hama"),
            "frame_seconds": FRAME_SECONDS,
            "tokens": self.tokens,
            "mapping_sha1": hashlib.sha1(mapping.encode()).hexdigest()[:12],
        }

    def __call__(self, samples: np.ndarray) -> TeacherPosteriors:
        x = np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1)
        if x.shape[1] == 0:
            raise ValueError("no audio samples")
        log_probs, lengths = self._model.session.run(
            self._outputs[:2], {self._inputs[0]: x, self._inputs[1]: np.array([x.shape[1]], dtype=np.int64)}
        )
        valid = int(np.asarray(lengths).reshape(-1)[0])
        probs = np.exp(np.asarray(log_probs[0, :valid], dtype=np.float64))
        probs /= probs.sum(axis=1, keepdims=True)  # the engine's log-softmax, to float64 precision
        mapped = np.zeros((valid, len(self.tokens)), dtype=np.float64)
        np.add.at(mapped.T, self._index, probs.T)
        unmapped = float(probs[:, self._unmapped].sum(axis=1).mean()) if valid else 0.0
        return TeacherPosteriors(np.log(np.maximum(mapped, 1e-12)).astype(np.float32), unmapped)

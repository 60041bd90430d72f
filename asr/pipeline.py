"""A recognizer bundle: the CTC model with everything it needs to turn samples into text.

``AsrModel`` = model + tokenizer + global CMVN + filterbank settings, saved together in one safetensors
checkpoint (never a pickle) and loaded with :func:`load_asr_model`. Offline decoding of whole utterances lives
here; the streaming recognizer (asr.streaming) uses the same pieces chunk by chunk.

Whole-utterance decoding takes any length: audio shorter than one model frame (fewer than 4 feature frames,
~55 ms) gives no frames and so an empty hypothesis, as streaming does; a causal model runs audio longer than
:data:`LONG_SECONDS` through its streaming form in pieces (the same numbers as one forward pass, memory bounded
by the piece); a bidirectional model refuses audio longer than :data:`MAX_BIDIRECTIONAL_SECONDS`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from asr.decoding import Hypothesis, beam_search, greedy_search
from asr.features import FbankConfig, GlobalCMVN, StreamingFbank, compute_fbank
from asr.model.checkpoint import load_checkpoint, save_checkpoint
from asr.model.ctc import CTCModel
from asr.text.base import Tokenizer
from asr.text.tokenizers import tokenizer_from_dict

logger = logging.getLogger(__name__)

#: Where the bundled model (and its LM folder) lives inside the package: what commands use without --model.
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "model"

#: Whole utterances longer than this (seconds) go through a causal model's streaming form in pieces this long.
LONG_SECONDS = 60.0
#: A bidirectional model sees a whole utterance at once: longer ones are refused (one forward over 10 minutes
#: needs ~1.7 GB for the bundled model's size, and attention grows with the square of the length).
MAX_BIDIRECTIONAL_SECONDS = 900.0
#: Silence appended to the end of every input before its last frames are decoded, in the full-utterance and the
#: streaming forms alike (so the two stay equal): a causal model emits a phone a frame or two after it heard it, so
#: audio cut right after the last word (tightly trimmed clips, Stop pressed at once) lost its last phones. Measured
#: on realspeech-dev (mostly such clips), phones1 epoch 9, greedy PER: 45.6 without, 43.9 with 0.05 s, 43.8 with
#: 0.1-1 s (deletions 402 -> 311). Twice what was needed. Times stay those of the audio: a segment ends at the end
#: of the input at the latest.
TAIL_PADDING_SECONDS = 0.2


@dataclass
class AsrModel:
    model: CTCModel
    tokenizer: Tokenizer
    cmvn: GlobalCMVN
    features: FbankConfig
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> AsrModel:
        self.model.to(device)  # CMVN statistics follow the features' device in GlobalCMVN.apply
        return self

    def featurize(self, samples: torch.Tensor) -> torch.Tensor:
        """Samples [N] (16 kHz float) -> normalised features [T, n_mels]."""
        return self.cmvn.apply(compute_fbank(samples.to(self.device), self.features))

    def tail_padding(self) -> torch.Tensor:
        """The silence appended to the end of an input (TAIL_PADDING_SECONDS at the model's rate)."""
        return torch.zeros(int(round(TAIL_PADDING_SECONDS * self.features.sample_rate)))

    def featurize_utterance(self, samples: torch.Tensor) -> torch.Tensor:
        """A whole utterance's samples [N] -> normalised features [T, n_mels], its tail padding included."""
        return self.featurize(torch.cat([samples.float().cpu(), self.tail_padding()]))

    @torch.inference_mode()
    def log_probs(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-utterance forward: feats [B, T, D], lengths [B] -> log_probs [B, T', V], out_lengths [B].
        A batch whose utterances are all shorter than one model frame (T < 4) gives T' = 0."""
        self.model.eval()
        factor = self.model.subsampling_factor
        if feats.shape[1] < factor:  # no model frame in any of them (the forward needs at least one)
            empty = torch.zeros(feats.shape[0], 0, self.model.config.vocab_size, device=self.device)
            return empty, torch.div(lengths, factor, rounding_mode="floor").to(self.device)
        return self.model(feats.to(self.device), lengths.to(self.device))

    def utterance_log_probs(
        self,
        samples: torch.Tensor,
        *,
        long_seconds: float = LONG_SECONDS,
        max_bidirectional_seconds: float = MAX_BIDIRECTIONAL_SECONDS,
    ) -> torch.Tensor:
        """One whole utterance's samples [N] -> log_probs [T', V] (float32, CPU; T' = 0 under ~55 ms).

        Longer than ``long_seconds``: a causal model steps through it ``long_seconds`` at a time with its state
        carried (front end included), in memory bounded by the piece; a bidirectional model refuses audio longer
        than ``max_bidirectional_seconds`` (ValueError)."""
        seconds = samples.shape[0] / self.features.sample_rate
        if seconds > long_seconds and self.model.config.causal:
            return self._stepped_log_probs(samples, piece_seconds=long_seconds)
        if seconds > max_bidirectional_seconds:
            raise ValueError(
                f"{seconds:.0f} s of audio is too long for this bidirectional model in one piece (at most "
                f"{max_bidirectional_seconds:.0f} s): split the file, or use a causal model (it decodes any length)"
            )
        feats = self.featurize_utterance(samples)
        lp, n = self.log_probs(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
        return lp[0, : int(n[0])].float().cpu()

    def _stepped_log_probs(self, samples: torch.Tensor, *, piece_seconds: float) -> torch.Tensor:
        piece = max(int(piece_seconds * self.features.sample_rate), self.features.window_length)
        return self.log_probs_of_pieces(samples[i : i + piece] for i in range(0, samples.shape[0], piece))

    @torch.inference_mode()
    def log_probs_of_pieces(self, pieces: Iterable[torch.Tensor]) -> torch.Tensor:
        """A causal model's full-utterance log-probs [T', V] (float32, CPU) of audio given in consecutive pieces of
        samples at the model's rate (any sizes; e.g. :func:`asr.audio.read_audio_blocks` of a long file): through
        the streaming form, the filterbank of each piece (bit-exact) then encoder steps of whole model frames with
        the state carried; the tail padding after the last piece. Memory is bounded by the largest piece, whatever
        the total length."""
        if not self.model.config.causal:
            raise ValueError("a bidirectional model sees a whole utterance at once: it cannot take it in pieces")
        self.model.eval()
        fbank = StreamingFbank(self.features)
        fstate = fbank.init_state()
        state = self.model.init_state(1, self.device)
        factor = self.model.subsampling_factor
        pending = torch.zeros(0, self.features.n_mels)
        out = []
        for samples in itertools.chain(pieces, [self.tail_padding()]):
            feats, fstate = fbank.step(samples.float().cpu(), fstate)
            pending = torch.cat([pending, self.cmvn.apply(feats)])
            usable = pending.shape[0] - pending.shape[0] % factor
            if usable:
                lp, state = self.model.step(pending[:usable].unsqueeze(0).to(self.device), state)
                out.append(lp[0].float().cpu())
                pending = pending[usable:]
        if not out:
            return torch.zeros(0, self.model.config.vocab_size)
        return torch.cat(out)

    def decode(self, log_probs: torch.Tensor, *, beam: int = 1) -> Hypothesis:
        """One utterance's log_probs [T', V] -> best hypothesis (greedy for beam=1, else prefix beam search)."""
        lp = log_probs.float().cpu()
        if beam <= 1:
            return greedy_search(lp, blank=self.tokenizer.blank_id)
        return beam_search(lp, beam=beam, blank=self.tokenizer.blank_id)

    def transcribe(self, samples: torch.Tensor, *, beam: int = 1) -> tuple[str, Hypothesis]:
        """One whole utterance -> (text, hypothesis): any length (see :meth:`utterance_log_probs`)."""
        hyp = self.decode(self.utterance_log_probs(samples), beam=beam)
        return self.tokenizer.decode(hyp.tokens), hyp

    @property
    def seconds_per_frame(self) -> float:
        """Seconds per model output frame (feature shift x subsampling)."""
        return self.features.frame_shift_ms / 1000.0 * self.model.subsampling_factor


def save_asr_model(
    path: str | os.PathLike,
    bundle: AsrModel,
    *,
    extra: dict[str, Any] | None = None,
    weights_dtype: str = "float32",
) -> Path:
    """Write ``bundle`` as one safetensors checkpoint; ``weights_dtype`` float16 / bfloat16 halves the file (the
    weights load back into float32 parameters; see asr.model.checkpoint)."""
    info = dict(bundle.extra)
    info.update(extra or {})
    info["features"] = dataclasses.asdict(bundle.features)
    return save_checkpoint(
        path,
        bundle.model,
        bundle.model.config,
        tokenizer_dict=bundle.tokenizer.to_dict(),
        cmvn_tensors=bundle.cmvn.to_dict(prefix=""),
        extra=info,
        weights_dtype=weights_dtype,
    )


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` or None: CUDA when present, else the CPU; any other name as torch reads it. ValueError for a name
    torch does not know, and for CUDA (or a GPU index) this machine does not have."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {str(device)!r} (use cpu, cuda, cuda:N or auto): {exc}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ValueError(f"device {str(device)!r}: only cpu and cuda devices are supported")
    return dev


def _checkpoint_in(folder: Path) -> Path | None:
    """``final.safetensors`` or ``model.safetensors`` in ``folder``, else its only ``*.safetensors``."""
    for name in ("final.safetensors", "model.safetensors"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors"))
    return found[0] if len(found) == 1 else None


def resolve_model_path(model: str | os.PathLike | None, *, bundled_dir: Path | None = None) -> Path:
    """The checkpoint file a ``--model`` value names: a file, a run folder (its ``final.safetensors`` or
    ``model.safetensors``, else its only ``*.safetensors``) or None for the bundled model (in ``bundled_dir``,
    default :data:`BUNDLED_MODEL_DIR`). ValueError saying what to do when there is none."""
    if model is None:
        bundled_dir = BUNDLED_MODEL_DIR if bundled_dir is None else bundled_dir
        found = _checkpoint_in(bundled_dir) if bundled_dir.is_dir() else None
        if found is None:
            raise ValueError(
                f"no --model given and no bundled model is installed yet (looked in {bundled_dir}); "
                "pass --model CHECKPOINT (e.g. RUN_DIR/final.safetensors from 'asr train')"
            )
        return found
    path = Path(model)
    if path.is_dir():
        found = _checkpoint_in(path)
        if found is None:
            raise ValueError(
                f"--model {str(path)!r} is a folder without final.safetensors, model.safetensors or a single "
                "*.safetensors file; name the checkpoint file"
            )
        return found
    if not path.is_file():
        raise ValueError(f"--model {str(path)!r} does not exist")
    return path


def load_asr_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> AsrModel:
    """Load a checkpoint written by :func:`save_asr_model` (safetensors only; no code is unpickled). ``device``:
    see :func:`resolve_device` (checked before the file is read)."""
    device = resolve_device(device)
    ckpt = load_checkpoint(path, device=device)
    extra = dict(ckpt.extra)
    feats = extra.pop("features", None)
    if feats is None:
        raise ValueError(f"checkpoint {path} has no front-end settings ('features' in its extra metadata)")
    try:
        features = FbankConfig(**feats)
    except TypeError as exc:
        raise ValueError(f"checkpoint {path}: bad front-end settings {feats} ({exc})") from exc
    bundle = AsrModel(
        model=ckpt.model.eval(),
        tokenizer=tokenizer_from_dict(ckpt.tokenizer),
        cmvn=GlobalCMVN.from_dict(ckpt.cmvn, prefix=""),
        features=features,
        extra=extra,
    )
    if bundle.tokenizer.vocab_size != bundle.model.config.vocab_size:
        raise ValueError(
            f"checkpoint {path}: tokenizer has {bundle.tokenizer.vocab_size} tokens but the model outputs "
            f"{bundle.model.config.vocab_size}"
        )
    return bundle

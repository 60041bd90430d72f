"""Real-speech clips -> 16 kHz mono FLAC, two recognizers' readings of each (cached, resumable), and the rule
that turns them into a reference and a kind of reference.

Audio: every clip is decoded, mixed to mono, resampled to 16 kHz (soxr, very high quality) and written as a
16-bit FLAC, ``<out>/audio/<package>/<clip id>.flac``; an existing file is reused.

Readings: Whisper tiny.en (:mod:`asr.peers.whisper`, int8, one thread, deterministic) and pocketsphinx
(:mod:`asr.peers.pocketsphinx`, bundled en-us models) read every converted clip, the metadata-labelled ones
included (which is how the rules below are checked). Each reading is appended to a JSONL cache
(``<out>/labels/whisper.jsonl``, ``pocketsphinx.jsonl``) keyed by clip id, a hash of the clip's 16 kHz samples and
the recognizer's settings and version; an interrupted run resumes where it stopped. The readings of the last full
build are committed (:data:`SEED_DIR`, ``asr/assets/realspeech_labels/<recognizer>.jsonl.gz``, written by
``tools/seed_realspeech_labels.py``): a new machine takes each clip's reading from there when the clip's samples and
the recognizer's settings and version match, so it neither spends an hour of CPU reading the clips again nor gets
other references where a recognizer's int8 arithmetic differs on another CPU; anything that does not match is read.

References, in order (:func:`choose_reference`); the first that applies wins:

1. ``metadata``: the package's own words for the clip (:mod:`asr.data.realspeech_sources`).
2. ``whisper+hint`` / ``pocketsphinx+hint``: a recognizer agrees (:func:`agree`) with the developer's label of
   the clip (a file name such as ``Youllregretthat``, a config comment such as ``Scavengers Detected``); that
   recognizer's text is the reference.
3. ``whisper+pocketsphinx``: the two recognizers agree; the reference is Whisper's text.
4. ``whisper``: a pseudo-label, only when Whisper is confident (:data:`PSEUDO_LABEL_GATE`). Training only.
5. ``hint+hama`` / ``whisper+hama`` / ``pocketsphinx+hama``: a third, independent recognizer that hears phones,
   not words (hama, :mod:`asr.peers.hama`), confirms a text at the phone level (:func:`phone_agreement`): the
   text's CMUdict phones and hama's differ in at most :data:`HAMA_MAX_PER` of them. Of the candidates (the clip's
   label, Whisper's and pocketsphinx's texts) the closest wins. Training only: homophones pass (Whisper's ``SEE``
   for the letter C, ``DEAR`` for deer), so the words may be wrong while the phones are right - on the
   metadata-labelled clips, the accepted texts' phones differ from the truth's in ~4% of phones (README.md of
   the output, ``hama_rule``), which is what a phone model learns from; a character model learns the homophone.

Kinds 1-3 are *reliable* (two independent sources give the same words) and may be used in dev and test -
except the recognizers' agreement on fewer than three words (:data:`MIN_AGREED_WORDS`): they share confusions
(homophones, letter names, a lean to common words), so a short ``whisper+pocketsphinx`` label is training-only.
Kinds 4 and 5 may not be used in dev and test either. A recognizer's text with letters outside A-Z and the apostrophe
(``CAFÉ``) is not used (``out_of_alphabet``): the tokenizers could not encode it. A clip with no reference is skipped:
``no_speech`` when Whisper hears none (empty text, its no-speech probability above 0.6, or a repetition loop -
compression ratio above 2.4 - that is Whisper's usual hallucination on noise and grunts), else
``unconfident_pseudo_label``.

Agreement (:func:`agree`): both texts non-empty and, after the project's normalisation (numbers spelled out),
the same letters in the same order; only word breaks and apostrophes may differ (``PALM TREE`` / ``PALMTREE``,
``YOU'LL`` / ``YOULL`` from a file name that cannot hold an apostrophe). Nothing else counts as agreement; the
reference is then the recognizer's text (its word breaks and apostrophes).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from asr.data.realspeech_sources import SourceClip, read_clip_audio
from asr.peers.whisper import normalize_hypothesis
from asr.text.normalize import normalize_text

logger = logging.getLogger(__name__)

__all__ = [
    "HAMA_MAX_PER",
    "PSEUDO_LABEL_GATE",
    "RELIABLE_KINDS",
    "SAMPLE_RATE",
    "Decision",
    "LabelCache",
    "MIN_AGREED_WORDS",
    "PseudoLabelGate",
    "agree",
    "choose_reference",
    "convert_clip",
    "RECOGNIZERS",
    "load_converted",
    "phone_agreement",
    "read_labels",
]

SAMPLE_RATE = 16000
RELIABLE_KINDS = ("metadata", "whisper+pocketsphinx", "whisper+hint", "pocketsphinx+hint")
# Rule 5: a text whose phones hama's reading matches this closely (errors / the text's phones). On the packages'
# metadata-labelled clips (296): 0.3 accepts 122 Whisper texts whose phones are 4.0% off the truth's; 0.34 (one
# phone in three: most clips are one short word) accepts 157 at 5.9%.
HAMA_MAX_PER = 0.3
# Two recognizers agreeing on one or two words is weak evidence: they share confusions and both lean to common
# words (on the packages' metadata-labelled clips they agreed on "TEN" for "hen", "WHY" for the letter Y, "SAID"
# for Z, "TWO CAN" for "toucan", "WE'RE RIGHT" for "rear right"; README.md of the output gives the counts).
MIN_AGREED_WORDS = 3
NO_SPEECH_PROB = 0.6  # Whisper's own no-speech threshold
LOOP_COMPRESSION_RATIO = 2.4  # Whisper's own repetition threshold


@dataclass(frozen=True)
class PseudoLabelGate:
    """When a Whisper reading alone is kept as a (training-only) label."""

    min_avg_logprob: float = -0.5  # token-weighted mean log-probability of its text
    max_no_speech_prob: float = 0.5
    max_compression_ratio: float = LOOP_COMPRESSION_RATIO
    # Whisper tiny.en on isolated words is right on ~2/3 of them whatever its confidence (measured on the packages'
    # metadata-labelled words and letters: README.md of the output), too noisy for a label: short texts need a
    # second source.
    min_words: int = 3

    def confident(self, w: dict[str, Any]) -> bool:
        """The confidence part of the gate (without the length rule)."""
        lp = w.get("avg_logprob")
        return (
            bool(w.get("normalized"))
            and lp is not None
            and lp >= self.min_avg_logprob
            and w["no_speech_prob"] <= self.max_no_speech_prob
            and w["compression_ratio"] <= self.max_compression_ratio
        )

    def passes(self, w: dict[str, Any]) -> bool:
        return self.confident(w) and len(w["normalized"].split()) >= self.min_words


PSEUDO_LABEL_GATE = PseudoLabelGate()


# ------------------------------------------------------------------------------------------------- audio


def convert_clip(clip: SourceClip, audio_dir: Path) -> Path:
    """The clip as a 16 kHz mono 16-bit FLAC under ``audio_dir/<package>/`` (written once, atomically)."""
    path = audio_dir / clip.package / f"{clip.id}.flac"
    if path.is_file():
        return path
    x, sr = read_clip_audio(clip)
    if sr != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sr, SAMPLE_RATE, quality="VHQ").astype(np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:  # resampling can overshoot a full-scale recording: scale, don't clip
        x = x / peak
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(str(tmp), x, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    os.replace(tmp, path)
    return path


def load_converted(path: Path) -> tuple[np.ndarray, str]:
    """A converted clip's samples (float32 [N]) and the hash of its int16 samples (the cache key)."""
    pcm, sr = sf.read(str(path), dtype="int16")
    if sr != SAMPLE_RATE or pcm.ndim != 1:
        raise ValueError(f"{path}: expected 16 kHz mono, got {sr} Hz shape {pcm.shape}")
    return pcm.astype(np.float32) / 32768.0, hashlib.sha1(pcm.tobytes()).hexdigest()


# ------------------------------------------------------------------------------------------------- cache


SEED_DIR = Path(__file__).resolve().parent.parent / "assets" / "realspeech_labels"  # committed readings


class LabelCache:
    """Append-only JSONL of one recognizer's readings: ``{"id", "sha1", "setup", "result"}`` per line.

    ``setup`` (settings and versions) and the sample hash must both match for an entry to be reused; a line that
    does not parse is an error naming the file and line (a half-written last line from a killed run is dropped
    with a warning). ``seed``: a gzipped file of such lines (the committed readings, read only) whose matching
    entries count as cached too; the cache's own lines win over it.
    """

    def __init__(self, path: Path, setup: dict[str, Any], seed: Path | None = None) -> None:
        self.path = Path(path)
        self.setup = setup
        self._setup_key = json.dumps(setup, sort_keys=True)
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        self.seeded = 0  # entries taken from the seed
        if seed is not None and Path(seed).is_file():
            try:
                lines = gzip.decompress(Path(seed).read_bytes()).decode("utf-8").splitlines()
            except (OSError, EOFError, UnicodeDecodeError) as e:
                raise ValueError(f"{seed}: not a gzipped UTF-8 JSONL file of readings ({e})") from e
            self._add(lines, Path(seed), truncate_half_line=False)
            self.seeded = len(self.entries)
        if self.path.is_file():
            self._add(self.path.read_text(encoding="utf-8").splitlines(), self.path, truncate_half_line=True)

    def _add(self, lines: list[str], where: Path, *, truncate_half_line: bool) -> None:
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key, result = (row["id"], row["sha1"]), row["result"]
            except json.JSONDecodeError as e:
                if truncate_half_line and lineno == len(lines):
                    logger.warning("%s:%d: dropping a half-written last line", where, lineno)
                    self._truncate_last_line()
                    continue
                raise ValueError(f"{where}:{lineno}: not JSON ({e})") from e
            except (KeyError, TypeError) as e:
                raise ValueError(f"{where}:{lineno}: not a reading (needs id, sha1, setup, result)") from e
            if json.dumps(row.get("setup"), sort_keys=True) == self._setup_key:
                self.entries[key] = result

    def _truncate_last_line(self) -> None:
        data = self.path.read_bytes()
        end = data.rstrip(b"\n").rfind(b"\n") + 1  # after the last complete line
        with self.path.open("r+b") as f:
            f.truncate(end)

    def get(self, clip_id: str, sha1: str) -> dict[str, Any] | None:
        return self.entries.get((clip_id, sha1))

    def put(self, clip_id: str, sha1: str, result: dict[str, Any]) -> None:
        self.entries[(clip_id, sha1)] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row = {"id": clip_id, "sha1": sha1, "setup": self.setup, "result": result}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


_PS_SETUP = "bundled en-us, default settings, cepstral mean reset per utterance"


def _whisper_setup() -> dict[str, Any]:
    from asr.peers.whisper import WhisperConfig, whisper_versions

    return {"config": asdict(WhisperConfig()), "versions": whisper_versions()}


def _whisper_reader() -> Callable[[np.ndarray], dict[str, Any]]:
    from asr.peers.whisper import WhisperTiny

    model = WhisperTiny()

    def read(x: np.ndarray) -> dict[str, Any]:
        r = model.transcribe(x)
        return {"text": r.text, "normalized": r.normalized, **r.confidence(), "cpu_seconds": round(r.cpu_seconds, 3)}

    return read


def _pocketsphinx_setup() -> dict[str, Any]:
    from asr.peers.pocketsphinx import pocketsphinx_version

    return {"version": pocketsphinx_version(), "config": _PS_SETUP}


def _pocketsphinx_reader() -> Callable[[np.ndarray], dict[str, Any]]:
    from asr.peers.pocketsphinx import PocketSphinx

    model = PocketSphinx()

    def read(x: np.ndarray) -> dict[str, Any]:
        r = model.transcribe(x)
        return {"text": r.text, "normalized": r.normalized, "cpu_seconds": round(r.cpu_seconds, 3)}

    return read


def _hama_setup() -> dict[str, Any]:
    import importlib.metadata

    from asr.peers.hama import IPA_TO_ARPABET, NOT_PHONES

    mapping = json.dumps([sorted(IPA_TO_ARPABET.items()), sorted(NOT_PHONES)], ensure_ascii=False)
    return {
        "version": importlib.metadata.version("hama"),
        "config": "greedy, default settings; IPA mapped onto ARPAbet (asr.peers.hama)",
        "mapping_sha1": hashlib.sha1(mapping.encode()).hexdigest()[:12],
    }


def _hama_reader() -> Callable[[np.ndarray], dict[str, Any]]:
    import time

    from asr.peers.hama import load_hama, to_arpabet

    model = load_hama()

    def read(x: np.ndarray) -> dict[str, Any]:
        t0 = time.thread_time()
        r = model(x, SAMPLE_RATE)
        return {"ipa": r.word_phoneme_text, "phones": " ".join(to_arpabet(r.phonemes)),
                "cpu_seconds": round(time.thread_time() - t0, 3)}  # fmt: skip

    return read


# name -> (the cache key: settings and versions, a factory loading the model and returning a reading function)
RECOGNIZERS: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[], Callable]]] = {
    "whisper": (_whisper_setup, _whisper_reader),
    "pocketsphinx": (_pocketsphinx_setup, _pocketsphinx_reader),
    "hama": (_hama_setup, _hama_reader),
}


def read_labels(
    audio: Iterable[tuple[str, Path]],
    label_dir: Path,
    *,
    recognizers: dict[str, tuple[Callable, Callable]] | None = None,
    progress: bool = True,
    seed_dir: Path | None = SEED_DIR,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{recognizer: {clip id: reading}}`` for ``(clip id, converted FLAC)`` pairs, from the cache (or the
    committed readings in ``seed_dir``, ``<recognizer>.jsonl.gz``) or decoded.

    A recognizer's model is loaded only when a clip is missing from its cache. ``recognizers`` defaults to
    :data:`RECOGNIZERS` (tests pass stand-ins).
    """
    from tqdm import tqdm

    items = list(audio)
    hashes = {clip_id: load_converted(path)[1] for clip_id, path in items}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, (setup, factory) in (RECOGNIZERS if recognizers is None else recognizers).items():
        cache = LabelCache(label_dir / f"{name}.jsonl", setup(), seed_dir / f"{name}.jsonl.gz" if seed_dir else None)
        got = {c: hit for c, _ in items if (hit := cache.get(c, hashes[c])) is not None}
        todo = [(c, p) for c, p in items if c not in got]
        if cache.seeded:
            logger.info("%s: %d clips' readings in the committed seed %s", name, cache.seeded, seed_dir)
        if todo:
            logger.info("%s: %d clips to read (%d cached)", name, len(todo), len(got))
            reader = factory()
            for clip_id, path in tqdm(todo, desc=f"{name} labels", unit="clip", disable=not progress):
                got[clip_id] = reader(load_converted(path)[0])
                cache.put(clip_id, hashes[clip_id], got[clip_id])
        out[name] = got
    return out


def write_seed(label_dir: Path, seed_dir: Path, recognizers: dict[str, tuple[Callable, Callable]] | None = None,
               ) -> dict[str, int]:  # fmt: skip
    """Write each recognizer's readings made with its current settings as ``seed_dir/<name>.jsonl.gz``: those of the
    seed already there (a prepare that took them from it did not copy them into its cache) and those cached in
    ``label_dir/<name>.jsonl`` (winning over the seed's); one line per clip and sample hash, sorted, gzip without a
    time stamp (the same readings give the same bytes). Returns the lines written per recognizer."""
    seed_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, (setup_fn, _) in (RECOGNIZERS if recognizers is None else recognizers).items():
        setup = setup_fn()
        cache = LabelCache(label_dir / f"{name}.jsonl", setup, seed=seed_dir / f"{name}.jsonl.gz")
        if not cache.entries:
            raise ValueError(f"{label_dir / (name + '.jsonl')}: no readings with {name}'s current settings")
        rows = [json.dumps({"id": i, "sha1": h, "setup": setup, "result": r}, ensure_ascii=False, sort_keys=True)
                for (i, h), r in sorted(cache.entries.items())]  # fmt: skip
        data = ("\n".join(rows) + "\n").encode("utf-8")
        (seed_dir / f"{name}.jsonl.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
        counts[name] = len(rows)
    return counts


# -------------------------------------------------------------------------------------------- references


def agree(a: str, b: str) -> bool:
    """Two normalised texts say the same words: the same letters in the same order, word breaks and apostrophes
    aside (``PALM TREE`` / ``PALMTREE``, ``YOU'LL REGRET THAT`` / ``YOULLREGRETTHAT``)."""
    return bool(a) and bool(b) and _letters(a) == _letters(b)


def _letters(text: str) -> str:
    return text.replace(" ", "").replace("'", "")


@dataclass(frozen=True)
class Decision:
    """The reference chosen for a clip, or why there is none."""

    text: str | None  # normalised reference; None: skip the clip
    kind: str  # metadata | whisper+pocketsphinx | whisper+hint | pocketsphinx+hint | whisper | *+hama | (skip)
    detail: str = ""

    @property
    def reliable(self) -> bool:
        """Usable in dev and test: metadata, a recognizer confirmed by the clip's label, or both recognizers
        agreeing on at least :data:`MIN_AGREED_WORDS` words."""
        if self.text is None or self.kind not in RELIABLE_KINDS:
            return False
        return self.kind != "whisper+pocketsphinx" or len(self.text.split()) >= MIN_AGREED_WORDS


def choose_reference(
    clip: SourceClip,
    whisper: dict[str, Any] | None,
    sphinx: dict[str, Any] | None,
    *,
    hama: dict[str, Any] | None = None,
    gate: PseudoLabelGate = PSEUDO_LABEL_GATE,
) -> Decision:
    """The reference for ``clip`` from its metadata and the readings (rules in the module docstring)."""
    if clip.reference is not None:
        return Decision(normalize_text(clip.reference), "metadata", clip.reference_source)
    decision = _choose(clip, whisper, sphinx, gate)
    if decision.kind == "unconfident_pseudo_label" and hama is not None:
        decision = _hama_confirmed(clip, whisper, sphinx, hama) or decision
    if decision.text is not None and not _ALPHABET.fullmatch(decision.text):
        return Decision(None, "out_of_alphabet", f"{decision.kind} text {decision.text!r} has letters outside A-Z '")
    return decision


_ALPHABET = re.compile(r"[A-Z' ]+")


def _choose(clip: SourceClip, whisper: dict | None, sphinx: dict | None, gate: PseudoLabelGate) -> Decision:
    w = whisper["normalized"] if whisper else ""
    s = sphinx["normalized"] if sphinx else ""
    hint = normalize_hypothesis(clip.hint) if clip.hint else ""
    if agree(w, hint):
        return Decision(w, "whisper+hint", f"hint {clip.hint!r}")
    if agree(s, hint):
        return Decision(s, "pocketsphinx+hint", f"hint {clip.hint!r}")
    if agree(w, s):
        return Decision(w, "whisper+pocketsphinx")
    if whisper is None:
        return Decision(None, "unlabelled", "no Whisper reading")
    if not w:
        return Decision(None, "no_speech", f"Whisper hears no words ({whisper['text']!r})")
    if whisper["compression_ratio"] > LOOP_COMPRESSION_RATIO:
        return Decision(None, "no_speech", f"Whisper repetition loop (ratio {whisper['compression_ratio']})")
    if whisper["no_speech_prob"] > NO_SPEECH_PROB:
        return Decision(None, "no_speech", f"Whisper no_speech_prob {whisper['no_speech_prob']}: {w!r}")
    if gate.passes(whisper):
        return Decision(w, "whisper", f"avg_logprob {whisper['avg_logprob']}")
    return Decision(
        None,
        "unconfident_pseudo_label",
        f"Whisper {w!r} (avg_logprob {whisper['avg_logprob']}, no_speech_prob {whisper['no_speech_prob']}), "
        f"pocketsphinx {s!r}" + (f", hint {hint!r}" if hint else ""),
    )


def phone_agreement(text: str, phones: str) -> float | None:
    """How far ``phones`` (a phone recognizer's ARPAbet reading) is from the CMUdict phones of ``text``: the phone
    error rate of the reading against the text's phones; None when the text is empty or has a word CMUdict lacks."""
    from asr.scoring import score_utterance
    from asr.text.phones import PhoneTokenizer

    tokenizer = PhoneTokenizer()
    if not text or tokenizer.oov(text):
        return None
    return score_utterance("", tokenizer.phones(text), phones).counts.rate


def _hama_confirmed(clip: SourceClip, whisper: dict | None, sphinx: dict | None, hama: dict) -> Decision | None:
    """Rule 5: the candidate text whose phones hama's reading matches best, if within HAMA_MAX_PER."""
    candidates = [
        ("hint", normalize_hypothesis(clip.hint) if clip.hint else ""),
        ("whisper", whisper["normalized"] if whisper else ""),
        ("pocketsphinx", sphinx["normalized"] if sphinx else ""),
    ]
    best = None
    for source, text in candidates:
        if not text or not _ALPHABET.fullmatch(text):
            continue
        per = phone_agreement(text, hama["phones"])
        if per is not None and per <= HAMA_MAX_PER and (best is None or per < best[0]):
            best = (per, source, text)
    if best is None:
        return None
    per, source, text = best
    return Decision(text, f"{source}+hama", f"hama {hama['phones']!r} at phone error {per:.3f}")

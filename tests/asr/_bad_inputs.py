"""Good and bad inputs for the bad-input matrices (tests/asr/test_cli_matrix.py and friends), and the case record
that docs/reliability.md is rendered from.

Everything is small and made on the spot: a hand-set model (tests/asr/live/conftest.py: band-noise bursts decode
to letters, so a good file has a known transcript) and a few dozen tiny files, each broken in one way.
"""

from __future__ import annotations

import json
import math
import pickle
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.pipeline import save_asr_model
from tests.asr.live.conftest import SAMPLE_RATE, burst_speech, make_band_model
from tests.asr.lm._lm_fixtures import tiny_lm

WORD = "CAB"  # what the good files say (the band model hears exactly this)


@dataclass(frozen=True)
class Case:
    """One row of the matrix: what is run, what must come out, what it proves (a docs/reliability.md row)."""

    name: str  # the pytest id
    area: str  # "asr transcribe", "asr eval", "streaming API", ...
    input: str  # the bad input, in words (the doc's "case" column)
    behaviour: str  # what happens, in words (the doc's "behaviour" column)
    argv: Callable[[Inputs], list[str]] | None = None  # CLI cases: the arguments after "asr"
    code: int = 0  # expected exit status
    message: Sequence[str] = ()  # substrings stderr must hold (the problem and, where there is one, its file)
    check: Callable[[Inputs, str, str], None] | None = None  # (inputs, stdout, stderr): nothing else was lost
    issue: str = ""  # "15.1" for issue 15's defect 1; "" for cases that already passed
    proof: str = ""  # the test that proves it, when not the matrix test of its own module ("path::function")


@dataclass
class Inputs:
    """Paths of the made inputs (attribute access: ``inputs.good``)."""

    root: Path
    paths: dict[str, Path] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Path:
        try:
            return self.__dict__["paths"][name]
        except KeyError:
            raise AttributeError(name) from None

    def s(self, name: str) -> str:
        return str(self.paths[name])


def _wav_bytes_with_size(path: Path, declared_frames: int, frames: np.ndarray) -> None:
    """A 16-bit mono WAV whose header announces ``declared_frames`` but holds ``frames``."""
    data = (np.clip(frames, -1, 1) * 32767).astype("<i2").tobytes()
    declared = declared_frames * 2
    header = b"RIFF" + struct.pack("<I", 36 + declared) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    header += b"data" + struct.pack("<I", declared)
    path.write_bytes(header + data)


def _manifest(path: Path, rows: list[dict], *, raw: str | bytes | None = None) -> Path:
    if raw is not None:
        path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _row(utt_id: str, audio: Path | str, text: str = WORD, duration: float = 2.0) -> dict:
    return {"id": utt_id, "audio": str(audio), "duration": duration, "text": text, "speaker": "s1"}


def make_inputs(root: Path) -> Inputs:
    root.mkdir(parents=True, exist_ok=True)
    p: dict[str, Path] = {}
    p["model"] = save_asr_model(root / "band.safetensors", make_band_model())
    p["lm"], p["lexicon"] = tiny_lm(root / "lm")  # a word LM for the band model's characters
    speech = burst_speech([WORD], seed=3, pause_s=0.9)
    seconds = speech.size / SAMPLE_RATE

    def wav(name: str, samples: np.ndarray, rate: int = SAMPLE_RATE, subtype: str = "PCM_16", *,
            filename: str | None = None) -> None:
        p[name] = root / (filename or f"{name}.wav")
        sf.write(str(p[name]), samples, rate, subtype=subtype)

    wav("good", speech)
    wav("good2", burst_speech(["BAD"], seed=4, pause_s=0.9))
    wav("good_flac", speech, filename="good.flac")
    wav("short", np.zeros(160, dtype=np.float32))  # 10 ms: no feature frame
    wav("short50", 0.1 * np.ones(800, dtype=np.float32))  # 50 ms: 3 feature frames, no model frame
    # odd rates and sample widths: the same words
    import torch

    from asr.audio import resample

    for rate in (8000, 22050, 44100):
        res = resample(torch.from_numpy(speech), orig_sr=SAMPLE_RATE, target_sr=rate).numpy()
        wav(f"rate{rate}", res, rate)
    wav("u8", speech, subtype="PCM_U8")
    wav("pcm24", speech, subtype="PCM_24")
    wav("float32", speech, subtype="FLOAT")
    wav("float64", speech, subtype="DOUBLE")
    wav("stereo", np.stack([speech, speech], axis=1))
    # broken files
    p["empty"] = root / "empty.wav"
    p["empty"].write_bytes(b"")
    wav("no_samples", np.zeros(0, dtype=np.float32))
    p["text"] = root / "notes.wav"
    p["text"].write_text("this is not audio at all, just text that ends in .wav\n" * 20)
    good_flac = p["good_flac"].read_bytes()
    p["truncated_flac"] = root / "truncated.flac"
    p["truncated_flac"].write_bytes(good_flac[: len(good_flac) // 2])
    p["corrupt_flac"] = root / "corrupt.flac"
    p["corrupt_flac"].write_bytes(good_flac[:200] + bytes(len(good_flac) - 200))
    p["truncated_wav"] = root / "truncated.wav"
    _wav_bytes_with_size(p["truncated_wav"], speech.size, speech[: speech.size // 3])
    nan = speech.copy()
    nan[1000] = math.nan
    wav("nan", nan, subtype="FLOAT")
    inf = speech.copy()
    inf[5] = math.inf
    wav("inf", inf, subtype="FLOAT")
    p["missing"] = root / "missing.wav"
    p["folder"] = root / "a_folder.wav"
    p["folder"].mkdir()
    # manifests
    p["m_good"] = _manifest(root / "good.jsonl", [_row("u1", p["good"]), _row("u2", p["good2"], "BAD")])
    p["m_mixed"] = _manifest(
        root / "mixed.jsonl",
        [_row("u1", p["good"]), _row("u2", p["missing"]), _row("u3", p["short"], "", 0.01), _row("u4", p["nan"])],
    )
    p["m_short_only"] = _manifest(
        root / "short_only.jsonl", [_row("s1", p["short"], "", 0.01), _row("s2", p["short50"], "", 0.05)]
    )
    p["m_all_fail"] = _manifest(root / "all_fail.jsonl", [_row("u1", p["missing"]), _row("u2", p["text"])])
    p["m_empty"] = _manifest(root / "empty.jsonl", [], raw="")
    p["m_blank"] = _manifest(root / "blank.jsonl", [], raw="\n   \n\n")
    p["m_bad_json"] = _manifest(
        root / "bad_json.jsonl", [], raw=json.dumps(_row("u1", p["good"])) + "\n{\"id\": \"u2\", \"audio\": \n"
    )
    p["m_dup"] = _manifest(root / "dup.jsonl", [_row("u1", p["good"]), _row("u1", p["good2"])])
    p["m_fields"] = _manifest(root / "fields.jsonl", [{**_row("u1", p["good"]), "txt": "typo"}])
    p["m_non_utf8"] = _manifest(
        root / "latin1.jsonl", [], raw=(json.dumps(_row("u1", p["good"])) + "\n").encode()
        + json.dumps(_row("u2", p["good"], "CAFE")).encode().replace(b"CAFE", b"CAF\xc9") + b"\n"
    )
    p["m_durations"] = _manifest(root / "durations.jsonl", [_row("u1", p["good"], duration=600.0)])
    p["pipe_ran"] = root / "pipe-ran"  # created by the pipe command, if it ever runs
    p["m_pipe"] = _manifest(root / "pipe.jsonl", [_row("u1", f"touch '{p['pipe_ran']}'; cat '{p['good']}' |")])
    # a LibriSpeech subset: one good file and one of each bad kind; a Kaldi dir with a pipe
    chapter = root / "ls" / "dev-clean" / "7" / "8"
    chapter.mkdir(parents=True)
    sf.write(str(chapter / "7-8-0000.flac"), speech, SAMPLE_RATE)
    (chapter / "7-8-0001.flac").write_bytes(good_flac[: len(good_flac) // 2])
    sf.write(str(chapter / "7-8-0002.wav"), nan, SAMPLE_RATE, subtype="FLOAT")
    sf.write(str(chapter / "7-8-0003.flac"), np.zeros(160, dtype=np.float32), SAMPLE_RATE)
    sf.write(str(chapter / "7-8-0004.flac"), speech, SAMPLE_RATE)
    (chapter / "7-8-0005.flac").write_bytes(b"")
    lines = [f"7-8-000{i} {WORD}".encode() for i in range(6)]
    lines[4] = b"7-8-0004 CAF\xc9"
    (chapter / "7-8.trans.txt").write_bytes(b"\n".join(lines) + b"\n")
    p["ls"] = root / "ls" / "dev-clean"
    p["kaldi"] = root / "kaldi"
    p["kaldi"].mkdir()
    p["kaldi_pipe_ran"] = root / "kaldi-pipe-ran"
    (p["kaldi"] / "wav.scp").write_text(f"u1 {p['good']}\nu2 touch '{p['kaldi_pipe_ran']}'; cat '{p['good']}' |\n")
    (p["kaldi"] / "text").write_text(f"u1 {WORD}\nu2 {WORD}\n")
    # recipes
    p["recipe_yaml"] = root / "broken.yaml"
    p["recipe_yaml"].write_text("model:\n  d_model: 64\n   num_layers: 2\n")
    p["pickle"] = root / "evil.safetensors"
    p["pickle"].write_bytes(pickle.dumps({"not": "a checkpoint"}))
    p["out_file"] = root / "taken.txt"
    p["out_file"].write_text("keep me\n")
    p["out_dir"] = root / "an_output_folder"
    p["out_dir"].mkdir()
    inputs = Inputs(root=root, paths=p)
    inputs.seconds = seconds  # type: ignore[attr-defined]
    return inputs


_FAULTS = "tests/asr/train/test_train_faults.py"
_LIVE = "tests/asr/live/test_live.py"

#: Training faults and the live source dying: proved by the tests named in ``proof``.
FAULT_CASES: list[Case] = [
    Case("sigkill", "asr train", "SIGKILL at two random steps (seeded), --resume after each",
         "the uninterrupted run's weights bit for bit; metrics.csv holds every step once, dev.csv the whole epoch's "
         "train_loss", issue="15.12", proof=f"{_FAULTS}::test_sigkill_at_random_steps_resumes_exactly"),
    *[
        Case(name, "asr train --resume", what, "a warning naming it, the pair set aside as *.bad, the previous "
             "checkpoint resumed: the uninterrupted run's weights and logs", issue="15.7",
             proof=f"{_FAULTS}::test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one")
        for name, what in [
            ("optim-truncated", "the latest checkpoint's optimiser state truncated"),
            ("optim-pickle", "a pickle (with code in it) in place of the latest optimiser state: never unpickled"),
            ("optim-not-a-state", "a valid torch file without optimiser/scheduler state"),
            ("model-truncated", "the latest checkpoint's model file truncated"),
            ("latest-files-gone", "'latest' names a checkpoint whose model file is gone"),
            ("latest-garbage", "'latest' holds garbage (the newest complete pair is used)"),
        ]
    ],
    Case("no-usable-checkpoint", "asr train --resume", "every checkpoint unusable",
         "exit 1 listing each checkpoint and why, no traceback", issue="15.7",
         proof=f"{_FAULTS}::test_no_usable_checkpoint_is_a_clear_error"),
    Case("disk-full", "asr train", "the disk fills up while a checkpoint is written (RLIMIT_FSIZE: EFBIG)",
         "exit 1 naming the checkpoint and --resume; 'latest' on the last complete one, no partial file; --resume "
         "then ends as if never stopped", proof=f"{_FAULTS}::test_a_disk_full_while_writing_a_checkpoint_refuses_"
         "clearly_then_resumes_exactly"),
    Case("source-dies", "asr live", "the audio source dies mid-capture (PulseAudio killed)",
         "exit 1 naming the problem; the words heard so far finalised and kept in --output", issue="15.4",
         proof="tests/asr/live/test_microphone.py::test_live_ends_with_an_error_when_the_sound_server_dies"),
    Case("source-stalls", "asr live", "the input delivers nothing (a hung device)",
         "a warning after 1 s, the end after 10 s (SourceLost), the transcript kept", issue="15.4",
         proof=f"{_LIVE}::test_run_live_warns_when_audio_stops_coming_then_gives_up"),
    Case("long-file", "asr transcribe / asr eval", "hours of audio in one file",
         "a causal model decodes it in 60 s pieces, in bounded memory, with the forward's numbers; a "
         "bidirectional one refuses it over 15 min", issue="15 (long files)",
         proof="tests/asr/test_pipeline.py::test_long_audio_runs_in_pieces_with_the_forward_numbers"),
    Case("same-resampler", "asr eval --mode stream", "a 22.05 kHz file",
         "resampled by the stream, as by asr transcribe --stream and asr live: the same text",
         issue="15 (resamplers)",
         proof="tests/asr/test_evaluate.py::test_stream_mode_resamples_in_the_stream_like_transcribe_stream"),
    Case("distill-config", "asr train", "distill.weight > 0 without distill.teacher, or a teacher store made for "
         "other tokens (a character run)", "a non-zero exit naming the problem (the setting, or the store and its "
         "tokens) before any step",
         proof="tests/asr/train/test_train_distill.py::test_a_distilling_run_adds_weight_times_kl_to_ctc"),
    Case("teacher-store", "tools/teacher_posteriors.py / asr train", "a store folder that is missing, empty, "
         "mixes teacher setups or was made for other tokens; an interrupted store run",
         "an error naming the folder or shard; a rerun makes only the utterances no shard holds",
         proof="tests/asr/distill/test_distill.py::test_store_shards_round_trip_resume_and_refuse_other_tokens"),
]


def render_table(cases: Sequence[Case], default_proof: str) -> str:
    """A markdown table of ``cases`` (case, behaviour, issue item, the test that proves it)."""
    lines = ["| where | case | behaviour | issue | test |", "|---|---|---|---|---|"]
    for c in cases:
        proof = c.proof or f"{default_proof}[{c.name}]"
        lines.append(f"| {c.area} | {c.input} | {c.behaviour} | {c.issue} | `{proof}` |")
    return "\n".join(lines)

"""The bad-input matrix of the ``asr`` command line (issue 15): every case runs the real command in-process and
asserts its exit status, that stderr names the problem (and the file, where there is one) and that nothing else
was lost (the other files transcribed, the reports written, files left as they were).

The cases are also the rows of docs/reliability.md (tests/asr/test_reliability_doc.py keeps it true).
"""

from __future__ import annotations

import json

import pytest

from asr.cli import main
from tests.asr._bad_inputs import WORD, Case, Inputs, make_inputs

REPO_RECIPE = "recipes/synth/tiny.yaml"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    return make_inputs(tmp_path_factory.mktemp("bad_inputs"))


def _lines(out: str) -> dict[str, str]:
    """``FILE<TAB>text`` lines -> {file name: text}."""
    rows = {}
    for line in out.splitlines():
        name, _, text = line.partition("\t")
        rows[name.rsplit("/", 1)[-1]] = text
    return rows


def _good_still_done(i: Inputs, out: str, err: str) -> None:
    assert _lines(out).get("good.wav") == WORD, out


def _transcribed_as_word(i: Inputs, out: str, err: str) -> None:
    assert out.strip() == WORD, (out, err)


def _untouched(name: str):
    def check(i: Inputs, out: str, err: str) -> None:
        path = i.paths[name]
        assert path.read_text() == "keep me\n" if path.is_file() else not any(path.iterdir())

    return check


def _summary(i: Inputs, folder: str) -> dict:
    return json.loads((i.root / folder / "summary.json").read_text())


def _tx(*names: str, extra: tuple[str, ...] = ()):
    return lambda i: ["transcribe", "--model", i.s("model"), *extra, *(i.s(n) for n in names)]


def _ev(data: str, *extra: str, out: str | None = None):
    def argv(i: Inputs) -> list[str]:
        args = ["eval", "--model", i.s("model"), "--data", i.s(data), "--no-progress", *extra]
        return [*args, "--out", str(i.root / out)] if out else args

    return argv


def _eval_short_only_scored(i: Inputs, out: str, err: str) -> None:
    s = _summary(i, "eval-short")
    assert s["utterances"] == 2 and s["failed"] == {}


def _eval_nothing_scored(i: Inputs, out: str, err: str) -> None:
    s = _summary(i, "eval-all-fail")  # the reports still say what failed
    assert sorted(s["failed"]) == ["u1", "u2"]


def _eval_audio_decoded(i: Inputs, out: str, err: str) -> None:
    s = _summary(i, "eval-durations")
    assert abs(s["audio_seconds"] - i.seconds) < 0.05, s  # the manifest claims 600 s
    assert s["failed"] == {}


def _eval_mixed(i: Inputs, out: str, err: str) -> None:
    s = _summary(i, "eval-mixed")
    assert sorted(s["failed"]) == ["u2", "u4"] and s["utterances"] == 4
    rows = {json.loads(r)["id"]: json.loads(r) for r in (i.root / "eval-mixed" / "utterances.jsonl").open()}
    assert rows["u1"]["hyp"] == WORD and rows["u3"]["hyp"] == ""
    assert abs(s["audio_seconds"] - (i.seconds + 0.01)) < 0.05  # the two decoded files only


def _prepared(i: Inputs, out: str, err: str) -> None:
    from asr.data.manifest import read_manifest

    assert [u.id for u in read_manifest(i.root / "prep" / "dev-clean.jsonl")] == ["7-8-0000"]
    entry = json.loads((i.root / "prep" / "summary.json").read_text())["manifests"]["dev-clean"]
    assert {x["item"]: x["reason"] for x in entry["skipped"]["items"]} == {
        "7-8-0001": "unreadable_audio", "7-8-0002": "unreadable_audio", "7-8-0003": "too_short",
        "7-8-0004": "transcript_not_utf8", "7-8-0005": "unreadable_audio"}


CASES: list[Case] = [
    # ---- asr transcribe ------------------------------------------------------------------------------------
    Case("transcribe-good", "asr transcribe", "a good 16 kHz WAV", "its text, exit 0", _tx("good"), 0, (),
         _transcribed_as_word),
    *[
        Case(f"transcribe-{name}", "asr transcribe", what, "the same text as the 16 kHz file, exit 0",
             _tx(name), 0, (), _transcribed_as_word)
        for name, what in [
            ("rate8000", "8 kHz WAV"), ("rate22050", "22.05 kHz WAV"), ("rate44100", "44.1 kHz WAV"),
            ("u8", "8-bit unsigned WAV"), ("pcm24", "24-bit WAV"), ("float32", "32-bit float WAV"),
            ("float64", "64-bit float WAV"), ("stereo", "stereo WAV"), ("good_flac", "FLAC"),
        ]
    ],
    Case("transcribe-short", "asr transcribe", "10 ms and 50 ms clips (no model frame) beside a good file",
         "an empty line for each short clip, the good file transcribed, exit 0",
         _tx("short", "short50", "good"), 0, (),
         lambda i, out, err: (_good_still_done(i, out, err), _lines(out)["short.wav"] == "" or pytest.fail(out),
                              _lines(out)["short50.wav"] == "" or pytest.fail(out)),
         "15.1"),
    Case("transcribe-short-lm", "asr transcribe --lm", "the same through the lexicon + LM decoder",
         "an empty line for each short clip, the good file transcribed, exit 0",
         lambda i: ["transcribe", "--model", i.s("model"), "--lm", i.s("lm"), "--lexicon", i.s("lexicon"),
                    i.s("short"), i.s("short50"), i.s("good")], 0, (),
         lambda i, out, err: (_lines(out)["short.wav"] == _lines(out)["short50.wav"] == "" and "good.wav" in
                              _lines(out)) or pytest.fail(out),
         "15.1"),
    *[
        Case(f"transcribe-{name}", "asr transcribe", what + " beside a good file",
             "the file named with the problem on stderr, the good file transcribed, exit 1",
             _tx(name, "good"), 1, (f"{name_in}", problem), _good_still_done)
        for name, what, name_in, problem in [
            ("empty", "0-byte file", "empty.wav", "empty"),
            ("no_samples", "WAV without samples", "no_samples.wav", "no samples"),
            ("text", "text file named .wav", "notes.wav", "cannot read audio file"),
            ("truncated_flac", "FLAC cut in half", "truncated.flac", "truncated.flac"),
            ("corrupt_flac", "FLAC with zeroed frames", "corrupt.flac", "corrupt.flac"),
            ("truncated_wav", "WAV shorter than its header", "truncated.wav", "truncated or corrupt"),
            ("nan", "float WAV with a NaN sample", "nan.wav", "NaN/inf"),
            ("inf", "float WAV with an inf sample", "inf.wav", "NaN/inf"),
            ("missing", "missing path", "missing.wav", "does not exist"),
            ("folder", "a folder given as audio", "a_folder.wav", "not a regular file"),
        ]
    ],
    Case("transcribe-pickle-model", "asr transcribe", "a pickle passed as --model",
         "refused without unpickling, the file named, exit 2",
         lambda i: ["transcribe", "--model", i.s("pickle"), i.s("good")], 2, ("evil.safetensors",)),
    Case("transcribe-cuda", "asr transcribe", "--device cuda on a machine without CUDA",
         "'CUDA is not available', exit 2 (before the model is read)",
         _tx("good", extra=("--device", "cuda")), 2, ("cuda", "CUDA is not available"), None, "15.15"),
    Case("transcribe-bad-device", "asr transcribe", "--device gpu (no such device)",
         "the device named, exit 2", _tx("good", extra=("--device", "gpu")), 2, ("'gpu'",), None, "15.15"),
    Case("transcribe-threads", "asr transcribe", "--threads -1", "'--threads: must be a positive integer', exit 2",
         _tx("good", extra=("--threads", "-1")), 2, ("--threads", "positive integer"), None, "15.16"),
    Case("transcribe-stream-bad", "asr transcribe --stream", "a NaN file and a 10 ms clip beside a good file",
         "the NaN file named on stderr, an empty transcript for the clip, the good file's words, exit 1",
         _tx("nan", "short", "good", extra=("--stream",)), 1, ("nan.wav", "NaN/inf"),
         lambda i, out, err: ("good.wav\t" + WORD in out and "short.wav" not in out) or pytest.fail(out)),
    # ---- asr eval -----------------------------------------------------------------------------------------------
    Case("eval-mixed", "asr eval", "a manifest with a missing file, a 10 ms clip and a NaN file among good ones",
         "every readable utterance scored (short: empty hypothesis), the failures listed in summary.json "
         "and counted as deletions, exit 0", _ev("m_mixed", out="eval-mixed"), 0, ("could not be read",),
         _eval_mixed, "15.1"),
    Case("eval-short-only", "asr eval", "a manifest whose batch holds only clips under 55 ms",
         "scored (empty hypotheses), reports written, exit 0", _ev("m_short_only", out="eval-short"), 0, (),
         _eval_short_only_scored, "15.1"),
    Case("eval-short-only-stream", "asr eval --mode stream", "the same, streaming",
         "scored (empty hypotheses), exit 0", _ev("m_short_only", "--mode", "stream"), 0, (), None, "15.1"),
    *[
        Case(f"eval-short-only-lm-{mode}", f"asr eval --lm --mode {mode}", "short clips only, lexicon + LM decoder",
             "scored (empty hypotheses), exit 0",
             lambda i, mode=mode: ["eval", "--model", i.s("model"), "--data", i.s("m_short_only"), "--no-progress",
                                   "--lm", i.s("lm"), "--lexicon", i.s("lexicon"), "--mode", mode], 0, (), None, "15.1")
        for mode in ("full", "stream")
    ],
    Case("eval-all-fail", "asr eval", "a manifest none of whose audio can be read",
         "'nothing was scored', the failures in summary.json, exit 1", _ev("m_all_fail", out="eval-all-fail"), 1,
         ("none of the 2 utterances could be read", "nothing was scored"), _eval_nothing_scored, "15.extra"),
    Case("eval-out-file", "asr eval", "--out naming an existing file",
         "refused before any decoding, the file left as it was, exit 2",
         _ev("m_good", "--out", "PLACEHOLDER"), 2, ("--out", "taken.txt", "not a folder"), _untouched("out_file"),
         "15.6"),
    Case("eval-rtf", "asr eval", "manifest durations that are wrong (600 s claimed, 2 s of audio)",
         "audio seconds and real-time factor from the audio decoded, exit 0",
         _ev("m_durations", out="eval-durations"), 0, (), _eval_audio_decoded, "15.13"),
    Case("eval-cuda", "asr eval", "--device cuda without CUDA", "'CUDA is not available', exit 2",
         _ev("m_good", "--device", "cuda"), 2, ("CUDA is not available",), None, "15.15"),
    Case("eval-threads", "asr eval", "--threads -1", "'--threads: must be a positive integer', exit 2",
         _ev("m_good", "--threads", "-1"), 2, ("--threads", "positive integer"), None, "15.16"),
    Case("eval-pickle-model", "asr eval", "a pickle passed as --model", "refused without unpickling, exit 2",
         lambda i: ["eval", "--model", i.s("pickle"), "--data", i.s("m_good")], 2, ("evil.safetensors",)),
    Case("eval-missing-data", "asr eval", "--data that does not exist", "the path named, exit 2",
         _ev("missing"), 2, ("missing.wav", "does not exist")),
    Case("eval-bad-json", "asr eval", "a manifest with a malformed JSON line", "file and line named, exit 2",
         _ev("m_bad_json"), 2, ("bad_json.jsonl:2",)),
    Case("eval-duplicate-ids", "asr eval", "a manifest with duplicate ids", "the ids and lines named, exit 2",
         _ev("m_dup"), 2, ("duplicate ids", "'u1' (lines [1, 2])")),
    Case("eval-unknown-field", "asr eval", "a manifest line with an unknown field",
         "file, line and field named, exit 2", _ev("m_fields"), 2, ("fields.jsonl:1", "txt")),
    Case("eval-non-utf8", "asr eval", "a manifest with a line that is not UTF-8", "file, line and byte named, exit 2",
         _ev("m_non_utf8"), 2, ("latin1.jsonl:2", "not UTF-8", "0xc9"), None, "15.5"),
    Case("eval-empty-manifest", "asr eval", "an empty manifest", "'holds no utterances', the file named, exit 2",
         _ev("m_empty"), 2, ("empty.jsonl", "holds no utterances"), None, "15.9"),
    Case("eval-blank-manifest", "asr eval", "a manifest of blank lines only", "'holds no utterances', exit 2",
         _ev("m_blank"), 2, ("blank.jsonl", "holds no utterances"), None, "15.9"),
    Case("eval-pipe", "asr eval", "a manifest whose audio is a shell command ('cmd |')",
         "refused before anything runs, '--allow-pipes' named, exit 2", _ev("m_pipe"), 2,
         ("shell command", "--allow-pipes"), lambda i, o, e: not i.pipe_ran.exists() or pytest.fail("it ran")),
    Case("eval-pipe-allowed", "asr eval --allow-pipes", "the same with the opt-in",
         "the command's audio scored, exit 0", _ev("m_pipe", "--allow-pipes", out="eval-pipe"), 0, (),
         lambda i, o, e: (_summary(i, "eval-pipe")["wer"] == 0.0 and i.pipe_ran.exists()) or pytest.fail(o)),
    # ---- asr prepare ---------------------------------------------------------------------------------------------
    Case("prepare-bad-files", "asr prepare", "a LibriSpeech subset with a truncated FLAC, a NaN WAV, a 10 ms clip, "
         "a 0-byte file and a transcript line that is not UTF-8 beside a good file",
         "the good file in the manifest; each other one skipped with its reason in summary.json, exit 0",
         lambda i: ["prepare", "librispeech", i.s("ls"), "--out", str(i.root / "prep")], 0, (), _prepared,
         "15.5, 15.11"),
    Case("prepare-kaldi-pipes", "asr prepare kaldi", "a wav.scp with a pipe command",
         "refused before anything runs, '--allow-pipes' named, exit 2",
         lambda i: ["prepare", "kaldi", i.s("kaldi"), "--out", str(i.root / "prep-kaldi")], 2,
         ("wav.scp", "pipe command", "--allow-pipes"),
         lambda i, o, e: not i.kaldi_pipe_ran.exists() or pytest.fail("it ran")),
    Case("prepare-missing", "asr prepare", "a source folder that does not exist", "the path named, exit 2",
         lambda i: ["prepare", "librispeech", i.s("missing"), "--out", str(i.root / "prep-x")], 2, ("missing.wav",)),
    Case("prepare-jobs", "asr prepare", "--jobs 0", "'--jobs: must be a positive integer', exit 2",
         lambda i: ["prepare", "librispeech", i.s("ls"), "--out", str(i.root / "prep-j"), "--jobs", "0"], 2,
         ("--jobs", "positive integer")),
    # ---- asr live -----------------------------------------------------------------------------------------------
    Case("live-output-folder", "asr live", "--output naming an existing folder",
         "refused before the microphone opens, exit 2",
         lambda i: ["live", "--model", i.s("model"), "--device", "cpu", "--output", i.s("out_dir")], 2,
         ("--output", "an_output_folder", "is a folder"), _untouched("out_dir"), "15.10"),
    Case("live-chunk", "asr live", "--chunk-ms 50 (not a multiple of 40 ms)", "the rule named, exit 2",
         lambda i: ["live", "--model", i.s("model"), "--device", "cpu", "--chunk-ms", "50"], 2,
         ("--chunk-ms", "multiple of 40")),
    Case("live-cuda", "asr live", "--device cuda without CUDA", "'CUDA is not available', exit 2",
         lambda i: ["live", "--model", i.s("model"), "--device", "cuda"], 2, ("CUDA is not available",), None,
         "15.15"),
    # ---- asr train ----------------------------------------------------------------------------------------------
    Case("train-recipe-yaml", "asr train", "a recipe with a YAML syntax error",
         "the file, line and column named, nothing started, exit 2",
         lambda i: ["train", i.s("recipe_yaml"), "--run-dir", str(i.root / "run-yaml")], 2,
         ("broken.yaml", "line 3", "YAML"), lambda i, o, e: not (i.root / "run-yaml").exists() or pytest.fail(),
         "15.8"),
    Case("train-override-yaml", "asr train", "a key=value override whose value is not YAML",
         "the override named, nothing started, exit 2",
         lambda i: ["train", REPO_RECIPE, "optim.betas=[0.9, 0.98", "--run-dir", str(i.root / "run-ov")], 2,
         ("optim.betas=[0.9, 0.98", "YAML"), None, "15.8"),
    Case("train-empty-manifest", "asr train", "data.train naming an empty manifest",
         "'holds no utterances', the file named, exit 1",
         lambda i: ["train", REPO_RECIPE, f"data.train={i.s('m_empty')}", "data.dev=null", "--run-dir",
                    str(i.root / "run-empty")], 1, ("empty.jsonl", "holds no utterances"), None, "15.9"),
    Case("train-pipe", "asr train", "training data whose audio is a shell command",
         "refused before training, 'data.allow_pipes=true' named, exit 1",
         lambda i: ["train", REPO_RECIPE, f"data.train={i.s('m_pipe')}", "data.dev=null", "--run-dir",
                    str(i.root / "run-pipe")], 1, ("shell command", "data.allow_pipes=true"), None),
    Case("train-cuda", "asr train", "device=cuda on a machine without CUDA",
         "'CUDA is not available', nothing trained, exit 1",
         lambda i: ["train", REPO_RECIPE, f"data.train={i.s('m_good')}", "data.dev=null", "device=cuda",
                    "--run-dir", str(i.root / "run-cuda")], 1, ("CUDA is not available",),
         lambda i, o, e: not (i.root / "run-cuda" / "checkpoints").exists() or pytest.fail(), "15.15"),
    Case("train-threads", "asr train", "num_threads=-1", "the key named, nothing started, exit 2",
         lambda i: ["train", REPO_RECIPE, "num_threads=-1", "--run-dir", str(i.root / "run-threads")], 2,
         ("num_threads",), lambda i, o, e: not (i.root / "run-threads").exists() or pytest.fail(), "15.16"),
    Case("train-unknown-key", "asr train", "an unknown recipe key", "the key named, exit 2",
         lambda i: ["train", REPO_RECIPE, "optim.lrr=1", "--run-dir", str(i.root / "run-key")], 2, ("optim.lrr",)),
]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_case(case: Case, inputs: Inputs, capsys, monkeypatch):
    argv = case.argv(inputs)
    argv = [inputs.s("out_file") if a == "PLACEHOLDER" else a for a in argv]
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parents[2])  # recipes/ paths
    code, out, err = _run(argv, capsys)
    assert code == case.code, f"exit {code}, expected {case.code}\nstdout: {out}\nstderr: {err}"
    for needle in case.message:
        assert needle in err, f"{needle!r} not in stderr:\n{err}"
    assert "Traceback" not in err
    if case.check is not None:
        case.check(inputs, out, err)

"""The decoder options of asr transcribe / asr eval: --lm, --lexicon, --no-lm, weights, --grid, bad files."""

import argparse
import json
from pathlib import Path

import pytest

from asr.cli import main
from asr.commands.lm_options import add_lm_arguments
from asr.pipeline import BUNDLED_MODEL_DIR
from tests.asr.lm._lm_fixtures import tiny_lm

AUDIO = BUNDLED_MODEL_DIR.parent / "audio"
GOFORWARD = AUDIO / "real" / "goforward.flac"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny LM with its lexicon spelled for the bundled model (letters, or pronunciations for a phone model)."""
    from asr.pipeline import load_asr_model, resolve_model_path

    tokenizer = load_asr_model(resolve_model_path(None)).tokenizer
    arpa, lexicon = tiny_lm(tmp_path_factory.mktemp("lm"), tokenizer=tokenizer)
    return ["--lm", str(arpa), "--lexicon", str(lexicon)]


def test_transcribe_with_an_external_lm_gives_words_with_times(tiny, capsys):
    assert main(["transcribe", "--json", *tiny, "--lm-weight", "1", "--word-score", "-1", str(GOFORWARD)]) == 0
    row = json.loads(capsys.readouterr().out)
    vocabulary = {"THE", "CAT", "SAT", "ON", "MAT", "DOG", "LOG", "A", "AND", "RAN", "AWAY", "GO", "FORWARD", "TEN",
                  "METERS", "BACK", "TWO", "TURN", "LEFT", "IS", "RED"}
    assert row["words"] and {w["word"] for w in row["words"]} <= vocabulary
    assert row["text"] == " ".join(w["word"] for w in row["words"])
    assert all(0 <= w["start"] < w["end"] <= row["duration"] + 0.05 for w in row["words"])


def test_no_lm_is_greedy(capsys):
    from asr.audio import load_audio
    from asr.pipeline import load_asr_model, resolve_model_path

    bundle = load_asr_model(resolve_model_path(None))
    greedy, _ = bundle.transcribe(load_audio(GOFORWARD, target_sr=16000))
    assert main(["transcribe", "--no-lm", str(GOFORWARD)]) == 0
    assert capsys.readouterr().out.strip() == greedy


@pytest.mark.parametrize(
    "args, message",
    [
        (["--no-lm", "--lm-weight", "1"], "--no-lm cannot be combined with --lm-weight"),
        (["--lm", "missing.arpa", "--lexicon", "missing.txt"], "lexicon 'missing.txt' does not exist"),
        (["--beam", "0", "--no-lm"], "--beam must be >= 1"),
        (["--beam-tokens", "0"], "--beam-tokens must be >= 1"),
        (["--no-lm", "--beam-tokens", "8"], "--no-lm cannot be combined with --beam-tokens"),
    ],
)
def test_bad_decoder_options_are_refused(args, message, capsys):
    assert main(["transcribe", *args, str(GOFORWARD)]) == 2
    assert message in capsys.readouterr().err


def test_beam_tokens_is_a_count_or_all(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["transcribe", "--beam-tokens", "most", str(GOFORWARD)])
    assert exit_.value.code == 2 and "expected a number of tokens or 'all', got 'most'" in capsys.readouterr().err
    from asr.commands.lm_options import _options

    parser = argparse.ArgumentParser()
    add_lm_arguments(parser)
    assert _options(parser.parse_args(["--beam-tokens", "all"])) == {"beam_size_token": None}  # overrides a folder's
    assert _options(parser.parse_args(["--beam-tokens", "12"])) == {"beam_size_token": 12}


def test_bad_lexicon_is_reported_before_any_audio(tiny, tmp_path, capsys):
    bad = tmp_path / "bad.lex"
    spelled = dict(line.split("\t", 1) for line in Path(tiny[3]).read_text().splitlines())
    bad.write_text(f"CAT\t{spelled['CAT']}\nDOG\t{spelled['DOG']} 1\n")  # the first line is good
    # the audio file does not exist either: the lexicon error comes first, so no audio was read
    code = main(["transcribe", "--lm", tiny[1], "--lexicon", str(bad), str(tmp_path / "nothing.wav")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: word 'DOG' is spelled with ['1']" in err and "nothing.wav" not in err


def test_eval_with_lm_full_and_stream_and_the_grid(tiny, tmp_path, capsys):
    data = str(AUDIO / "real.jsonl")
    common = ["eval", "--data", data, "--max-utterances", "3", "--threads", "1", "--no-progress", *tiny]
    for mode in ("full", "stream"):
        assert main([*common, "--mode", mode, "--out", str(tmp_path / mode)]) == 0
        summary = json.loads((tmp_path / mode / "summary.json").read_text())
        assert summary["lm"]["mode"] == "lexicon+lm" and summary["lm"]["unk_score"] is None
        rows = [json.loads(line) for line in (tmp_path / mode / "utterances.jsonl").read_text().splitlines()]
        assert all("words" in r for r in rows)
    assert [json.loads(x)["hyp"] for x in (tmp_path / "full" / "utterances.jsonl").read_text().splitlines()] == [
        json.loads(x)["hyp"] for x in (tmp_path / "stream" / "utterances.jsonl").read_text().splitlines()
    ]
    capsys.readouterr()
    args = [*common, "--grid", "--lm-weights", "0,1", "--word-scores=-1,0", "--out", str(tmp_path / "grid")]
    assert main(args) == 0
    assert "lm_weight" in capsys.readouterr().out
    grid = json.loads((tmp_path / "grid" / "grid.json").read_text())
    assert len(grid["rows"]) == 4 and grid["best"] == grid["rows"][0]
    assert [r["wer"] for r in grid["rows"]] == sorted(r["wer"] for r in grid["rows"])
    assert main([*common, "--grid", "--no-lm", "--lm", tiny[1]]) == 2
    # the blank penalty: a grid axis, and an option whose run equals its grid row
    capsys.readouterr()
    args = [*common, "--grid", "--lm-weights", "1", "--word-scores=-1", "--blank-penalties", "0,2", "--out",
            str(tmp_path / "grid2")]  # fmt: skip
    assert main(args) == 0
    assert "blank_pen" in capsys.readouterr().out
    rows = json.loads((tmp_path / "grid2" / "grid.json").read_text())["rows"]
    assert sorted(r["blank_penalty"] for r in rows) == [0.0, 2.0]
    row = next(r for r in rows if r["blank_penalty"] == 2.0)
    out = tmp_path / "penalised"
    assert main([*common, "--lm-weight", "1", "--word-score", "-1", "--blank-penalty", "2", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lm"]["blank_penalty"] == 2.0 and summary["wer"] == pytest.approx(row["wer"])
    assert main([*common, "--grid", "--blank-penalties", "1,x"]) == 2
    assert "--blank-penalties must be comma-separated numbers" in capsys.readouterr().err
    # the search as an axis: each row names its beam, the table shows them
    args = [*common, "--grid", "--lm-weights", "1", "--word-scores=-1", "--beams", "2,16", "--beam-token-limits", "all",
            "--out", str(tmp_path / "grid3")]  # fmt: skip
    assert main(args) == 0
    assert "beam" in capsys.readouterr().out
    rows = json.loads((tmp_path / "grid3" / "grid.json").read_text())["rows"]
    assert sorted(r["beam_size"] for r in rows) == [2, 16] and {r["beam_size_token"] for r in rows} == {None}
    assert main([*common, "--grid", "--beams", "0"]) == 2
    assert "--beams must be >= 1, got 0" in capsys.readouterr().err

"""tools/tune_lm.py with several dev sets: each set counts alike (the mean of their WERs), not by its word count."""

from __future__ import annotations

import json

from asr.pipeline import BUNDLED_MODEL_DIR
from tests.asr.lm._lm_fixtures import tiny_lm
from tests.tools import load_tool

AUDIO = BUNDLED_MODEL_DIR.parent / "audio"


def test_two_sets_are_ranked_by_the_mean_of_their_wers(tmp_path, capsys):
    from asr.pipeline import load_asr_model, resolve_model_path

    tokenizer = load_asr_model(resolve_model_path(None)).tokenizer
    arpa, lexicon = tiny_lm(tmp_path / "lm", tokenizer=tokenizer)
    lines = (AUDIO / "real.jsonl").read_text().splitlines()
    sets = []
    for name, part in (("a", lines[:2]), ("b", lines[2:5])):
        rows = [json.loads(line) for line in part]
        for r in rows:
            r["audio"] = str(AUDIO / r["audio"])  # the manifests move: absolute paths
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        sets += ["--data", str(tmp_path / f"{name}.jsonl")]
    tool = load_tool("tune_lm")
    common = [*sets, "--lm", str(arpa), "--lexicon", str(lexicon), "--lm-weights", "0,1", "--word-scores=-1,0"]
    assert tool.main([*common, "--out", str(tmp_path / "mean")]) == 0
    grid = json.loads((tmp_path / "mean" / "grid.json").read_text())
    assert grid["criterion"] == "mean of the sets' WER" and len(grid["rows"]) == 4
    for row in grid["rows"]:
        assert sorted(row["sets"]) == sorted([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")])
        assert abs(row["mean_wer"] - sum(v["wer"] for v in row["sets"].values()) / 2) < 1e-12
    means = [(r["mean_wer"], r["mean_cer"]) for r in grid["rows"]]
    assert means == sorted(means) and grid["best"] == grid["rows"][0]
    assert "mean WER/CER" in capsys.readouterr().out
    assert tool.main([*common, "--criterion", "pooled", "--out", str(tmp_path / "pooled")]) == 0
    pooled = json.loads((tmp_path / "pooled" / "grid.json").read_text())
    assert pooled["criterion"] == "pooled WER" and "sets" not in pooled["rows"][0]
    wers = [(r["wer"], r["cer"]) for r in pooled["rows"]]
    assert wers == sorted(wers)
    # the same four settings: pooled WER per setting is the same whichever way the rows are ranked
    key = lambda r: (r["lm_weight"], r["word_score"])  # noqa: E731
    assert {key(r): r["wer"] for r in pooled["rows"]} == {key(r): r["wer"] for r in grid["rows"]}


def _lm_folder(tmp_path, decoder: dict):
    """(the bundled model's tokenizer, an LM folder with a tiny LM for it and ``decoder`` as its settings)."""
    from asr.pipeline import load_asr_model, resolve_model_path

    tokenizer = load_asr_model(resolve_model_path(None)).tokenizer
    folder = tmp_path / "lm"
    folder.mkdir()
    arpa, lexicon = tiny_lm(folder, tokenizer=tokenizer)
    meta = {"format": 1, "lm": arpa.name, "lexicon": lexicon.name,
            "tokenizer": {"kind": tokenizer.kind, "tokens": list(tokenizer.tokens)}, "decoder": decoder}  # fmt: skip
    (folder / "lm.json").write_text(json.dumps(meta))
    return tokenizer, folder


def test_the_blank_penalty_is_tuned_and_recorded_in_the_lm_folder(tmp_path):
    """--blank-penalties adds an axis; --write records the best row's penalty in lm.json, which the folder's
    decoder (what asr transcribe / live / eval use by default) then applies."""
    from asr.lm.folder import folder_decoder, read_lm_folder

    tokenizer, folder = _lm_folder(tmp_path, {"lm_weight": 1.0, "word_score": -1.0})
    tool = load_tool("tune_lm")
    argv = ["--data", str(AUDIO / "real.jsonl"), "--max-utterances", "3", "--lm", str(folder), "--lm-weights", "1",
            "--word-scores=-1", "--blank-penalties", "0,1.5", "--out", str(tmp_path / "t"), "--write", str(folder)]
    assert tool.main(argv) == 0
    grid = json.loads((tmp_path / "t" / "grid.json").read_text())
    assert sorted(r["blank_penalty"] for r in grid["rows"]) == [0.0, 1.5]
    recorded = json.loads((folder / "lm.json").read_text())
    assert recorded["decoder"]["blank_penalty"] == grid["best"]["blank_penalty"]
    assert recorded["tuning"]["grid"]["blank_penalties"] == [0.0, 1.5]
    decoder = folder_decoder(read_lm_folder(folder), tokenizer)
    assert decoder.config.blank_penalty == grid["best"]["blank_penalty"]


def test_the_search_settings_are_a_grid_axis_recorded_in_the_lm_folder(tmp_path, capsys):
    """--beams x --beam-token-limits: every row names its search and times it; --write records the best row's
    search, and the folder's decoder then searches with it."""
    from asr.lm.folder import folder_decoder, read_lm_folder

    tokenizer, folder = _lm_folder(tmp_path, {"lm_weight": 1.0, "word_score": -1.0, "beam_size_token": 3})
    tool = load_tool("tune_lm")
    argv = ["--data", str(AUDIO / "real.jsonl"), "--max-utterances", "3", "--lm", str(folder), "--lm-weights", "1",
            "--word-scores=-1", "--beams", "1,8", "--beam-token-limits", "2,all", "--beam-thresholds", "20",
            "--out", str(tmp_path / "t"), "--write", str(folder)]  # fmt: skip
    assert tool.main(argv) == 0
    assert "tokens" in capsys.readouterr().out  # the table shows the search columns when they vary
    grid = json.loads((tmp_path / "t" / "grid.json").read_text())
    searches = sorted((r["beam_size"], r["beam_size_token"] or 0, r["beam_threshold"]) for r in grid["rows"])
    assert searches == [(1, 0, 20.0), (1, 2, 20.0), (8, 0, 20.0), (8, 2, 20.0)]
    assert all(r["rtf"] > 0 for r in grid["rows"])
    ranked = [(r["wer"], r["cer"], r["rtf"]) for r in grid["rows"]]
    assert ranked == sorted(ranked)
    best = grid["best"]
    recorded = json.loads((folder / "lm.json").read_text())
    assert recorded["decoder"]["beam_size"] == best["beam_size"]
    assert recorded["decoder"].get("beam_size_token") == best["beam_size_token"]  # "all" drops the folder's 3
    assert recorded["tuning"]["grid"]["searches"][0] == {"beam_size": 1, "beam_size_token": 2, "beam_threshold": 20.0}
    config = folder_decoder(read_lm_folder(folder), tokenizer).config
    assert (config.beam_size, config.beam_size_token, config.beam_threshold) == (
        best["beam_size"], best["beam_size_token"], 20.0,
    )  # fmt: skip


def test_bad_search_grids_are_refused(capsys):
    import pytest

    tool = load_tool("tune_lm")
    for flag, value, message in (
        ("--beams", "0,8", "--beams must be >= 1, got 0"),
        ("--beam-token-limits", "4,x", "--beam-token-limits must be comma-separated integers or 'all'"),
        ("--beam-thresholds", "-1", "--beam-thresholds must be > 0, got -1.0"),
        ("--beams", "all", "--beams must be comma-separated integers"),
    ):
        with pytest.raises(SystemExit):
            tool.main(["--data", str(AUDIO / "real.jsonl"), "--out", "unused", flag, value])
        assert message in capsys.readouterr().err

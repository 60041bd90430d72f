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

"""tools/bench_gemm.py on the bundled model: every linear layer of the packed step, the three methods per row count,
and what it writes."""

from __future__ import annotations

import json

import pytest
import torch

from asr.model.inference import PackedStep
from asr.pipeline import BUNDLED_MODEL_DIR, load_asr_model
from tests.tools import load_tool


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_bench_gemm_times_every_layer_of_the_bundled_model(tmp_path, capsys):
    bench = load_tool("bench_gemm")
    model = load_asr_model(BUNDLED_MODEL_DIR / "model.safetensors").model
    layers = bench.model_layers(PackedStep(model, kernel="c"))
    cfg = model.config
    assert len(layers) == 1 + 6 * cfg.num_layers + 1  # projection, 6 a block, head
    assert bench.main(["--rows", "1,4", "--rounds", "2", "--out", str(tmp_path)]) == 0
    d = json.loads((tmp_path / "bench_gemm.json").read_text())
    assert [r["rows"] for r in d["results"]] == [1, 4]
    assert all(set(r["median_us"]) == {"addmm", "panels f32", "panels f16"} for r in d["results"])
    assert all(v > 0 for r in d["results"] for v in r["median_us"].values())
    # the bundled model is stored in float16: all but the folded output-norm projections pack in float16
    assert d["weight_bytes"]["panels f16"] < 0.6 * d["weight_bytes"]["float32"]
    assert "f16 / addmm" in (tmp_path / "bench_gemm.md").read_text() and "f16 / addmm" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--rows"):
        bench.main(["--rows", "0", "--out", str(tmp_path)])

"""Smoke tests for tools/bench_streaming.py and its parts in tools/bench/ (tiny settings: the benchmark itself is
not a test)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.tools import load_tool

bench = load_tool("bench_streaming")


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """main() sets torch's thread count: restore it for the rest of the session."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_largest_within_finds_the_boundary_by_doubling_and_bisection():
    calls = []

    def time_of(n):  # 1 ms per stream + 5 ms fixed: 155 streams fit in 160 ms
        calls.append(n)
        return 0.005 + 0.001 * n

    n, points = bench.throughput._largest_within(time_of, 0.160, start=8, n_max=4096)
    assert 146 <= n <= 155 and time_of(n) < 0.160  # ~6% resolution, never over budget
    assert points == sorted(points) and len(calls) < 20
    n, _ = bench.throughput._largest_within(lambda n: 1.0, 0.160, start=8, n_max=4096)
    assert n == 0  # nothing fits
    n, _ = bench.throughput._largest_within(lambda n: 0.0, 0.160, start=8, n_max=100)
    assert n == 64  # capped by n_max: the largest power of two tried


def test_search_repeats_report_the_median_and_every_search():
    calls = []

    def time_of(n):  # 1 ms per stream + 5 ms, and a neighbour's burst during the very second probe
        calls.append(n)
        return 0.005 + 0.001 * n + (0.5 if len(calls) == 2 else 0.0)

    result = bench.throughput._search(time_of, 0.160, start=8, n_max=4096, repeats=3)
    assert len(result["searches"]) == 3 and result["searches"][0] < 16  # one bad probe ruined one search
    assert result["max_streams"] == sorted(result["searches"])[1] >= 146  # the median ignores it
    assert result["points"] == sorted(result["points"]) and not result["capped"]


def test_kv_cache_state_has_the_history_length_and_steps():
    model = bench.setup.build_model("softmax", seed=0, device=torch.device("cpu"))
    state = bench.latency.kv_cache_state(model, 2.0, device=torch.device("cpu"), seed=0)
    frames = 2 * bench.setup.FRAME_RATE // model.config.subsampling_factor
    assert all(layer.attention.k.shape[2] == frames for layer in state.layers)
    with torch.inference_mode():
        _, new = model.step(torch.randn(1, 16, 80), state)
    assert new.layers[0].attention.k.shape[2] == frames + 4
    assert bench.bc.tensor_bytes(state) > bench.bc.tensor_bytes(model.init_state(1))


def test_pocketsphinx_peer_runs_on_speech():
    audio, _ = bench.rtf.load_speech(1)
    out = bench.rtf.run_pocketsphinx(audio[: 16000 * 2], 2560, repeats=1)
    assert "error" not in out and out["rtf"] > 0 and isinstance(out["text"], str)


def test_latency_section_writes_json_table_and_png(tmp_path, capsys):
    rc = bench.main([
        "--quick", "--sections", "latency", "--checkpoints", "0.64,1.28", "--window", "2",
        "--replay-rounds", "3", "--recompute-cap-s", "5", "--out", str(tmp_path),
    ])  # fmt: skip
    assert rc == 0
    data = json.loads((tmp_path / "bench_streaming.json").read_text())
    lat = data["latency"]
    assert set(lat["linear_replay"]) == {"0.64", "1.28"}
    assert np.isfinite(lat["linear_ratio_last_first"]) and lat["linear_ratio_last_first"] > 0
    kv = lat["softmax_kv_state_bytes"]
    assert kv["1.28"] > kv["0.64"]  # the softmax cache grows with the history; the linear state does not
    assert (tmp_path / "bench_streaming.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "Per-chunk compute" in out and "target <= 1.1" in out


def test_rtf_and_throughput_sections_compare_packed_and_module_steps(tmp_path, capsys):
    rc = bench.main([
        "--quick", "--sections", "rtf,throughput", "--rtf-repeats", "1", "--max-streams", "16",
        "--paired-rounds", "2", "--out", str(tmp_path),
    ])  # fmt: skip
    assert rc == 0
    data = json.loads((tmp_path / "bench_streaming.json").read_text())
    assert data["model"]["config"] == bench.setup.base_config("bundled").to_dict()  # the bundled model's size
    rtf = data["rtf"]
    for key in (
        "rtf",
        "encoder_rtf",
        "by_op_encoder_rtf",
        "module_rtf",
        "module_encoder_rtf",
        "encoder_speedup",
        "block_call_speedup",
    ):
        assert np.isfinite(rtf[key]) and rtf[key] > 0, key
    thr = data["throughput"]
    for kind in ("packed", "module"):
        pr = thr["paired_over_bound"][kind]
        assert len(pr["ratios"]) == 2 and pr["median"] > 0
    assert thr["module_step"]["max_streams"] >= 0 and thr["model_step"]["points"]
    assert len(thr["model_step"]["search_matmul"]) == 1 and thr["search_over_own_bound_model"][0] >= 0
    out = capsys.readouterr().out
    assert "encoder steps (CTCModel.step)" in out and "in turns with matmul" in out

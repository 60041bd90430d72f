#!/usr/bin/env python
"""The few-row matrix product (kernels.gemm) against PyTorch's GEMM on the bundled model's linear layers.

One pass = every linear layer of the model's packed streaming step (subsampling projection, each block's qkv,
attention out, conv in and out, feed-forward in and out, the CTC head), in the step's order, each on M rows (M =
streams x 4 frames for 160 ms chunks), so the weights meet the caches as they do in the step. Methods, timed in
turns (one pass of each, rotating, repeated), one thread:
- ``addmm``: torch.addmm on the weight transposed (the packed step before kernels.gemm, and its path for many rows);
- ``panels f32``: kernels.gemm on float32 panels;
- ``panels f16``: kernels.gemm on float16 panels (the bundled model's weights are exact in float16; its folded
  output-norm projection is not, and stays float32 in every method).
Prints a table (median microseconds a pass; ratio to addmm) and writes DIR/bench_gemm.{json,md}; the crossover in
rows is what kernels.gemm.SMALL_ROWS should be.

    python tools/bench_gemm.py                    # rows 1-32, ~1 min
    python tools/bench_gemm.py --rows 4,16 --rounds 50
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import _bench_common as bc
import torch

from asr.model.inference import PackedStep
from asr.pipeline import BUNDLED_MODEL_DIR, load_asr_model
from kernels import gemm


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=BUNDLED_MODEL_DIR / "model.safetensors", help="checkpoint")
    p.add_argument("--rows", default="1,2,4,8,12,16,24,32", help="comma-separated row counts")
    p.add_argument("--rounds", type=int, default=30, help="passes of each method per row count")
    p.add_argument("--out", type=Path, default=Path("runs/bench_gemm"), help="output folder")
    return p.parse_args(argv)


def model_layers(step: PackedStep) -> list:
    """The packed step's linear layers in the order it runs them."""
    layers = [step.subsampling.proj]
    for block in step.blocks:
        layers += [block.attention.qkv, block.attention.out]
        if block.conv is not None:
            layers += [block.conv.inner, block.conv.outer]
        layers += [block.ff_inner, block.ff_outer]
    return [*layers, step.head]


def methods(layers: list) -> dict[str, list]:
    """name -> per layer (weight_t, bias, panels or None)."""
    out: dict[str, list] = {"addmm": [(layer.weight, layer.bias, None) for layer in layers]}
    out["panels f32"] = [(layer.weight, layer.bias, gemm.pack(layer.weight, half=False)) for layer in layers]
    out["panels f16"] = [
        (layer.weight, layer.bias, gemm.pack(layer.weight, half=gemm.exact_in_half(layer.weight))) for layer in layers
    ]
    return out


def one_pass(spec: list, inputs: dict[int, torch.Tensor], outputs: list[torch.Tensor]) -> float:
    t0 = time.perf_counter()
    for (weight, bias, panels), out in zip(spec, outputs, strict=True):
        x = inputs[weight.shape[0]]
        if panels is None:
            torch.addmm(bias, x, weight) if bias is not None else torch.mm(x, weight)
        else:
            gemm.linear_unchecked(x, panels, bias, out, False)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    rows = [int(r) for r in args.rows.split(",")]
    if not rows or min(rows) < 1 or args.rounds < 1:
        raise SystemExit("--rows must be positive integers and --rounds >= 1")
    step = PackedStep(load_asr_model(args.model).model, kernel="c")
    layers = model_layers(step)
    specs = methods(layers)
    names = list(specs)
    results = []
    for m in rows:
        g = torch.Generator().manual_seed(m)
        inputs = {k: torch.randn(m, k, generator=g) for k in {layer.in_features for layer in layers}}
        outputs = [torch.empty(m, layer.out_features) for layer in layers]
        times: dict[str, list[float]] = {name: [] for name in names}
        for name in names:  # warm-up
            one_pass(specs[name], inputs, outputs)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(one_pass(specs[name], inputs, outputs))
        med = {name: statistics.median(t) for name, t in times.items()}
        results.append({"rows": m, "median_us": {k: round(v * 1e6, 1) for k, v in med.items()}})
    f16_bytes = sum(p.panels.numel() * p.panels.element_size() for _, _, p in specs["panels f16"])
    f32_bytes = sum(w.numel() * 4 for w, _, _ in specs["addmm"])
    header = ["rows", *[f"{n} (us a pass)" for n in names], "f32 / addmm", "f16 / addmm"]
    table = [
        [str(r["rows"]), *[f"{r['median_us'][n]:.0f}" for n in names]]
        + [f"{r['median_us'][n] / r['median_us']['addmm']:.2f}" for n in ("panels f32", "panels f16")]
        for r in results
    ]
    payload = {
        "machine": bc.machine_info(torch.device("cpu")),
        "model": str(args.model),
        "layers": len(layers),
        "weight_bytes": {"float32": f32_bytes, "panels f16": f16_bytes},
        "features": gemm.features(),
        "small_rows": gemm.SMALL_ROWS,
        "rounds": args.rounds,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    bc.write_json(args.out / "bench_gemm.json", payload)
    md = bc.render_table(header, table, markdown=True)
    (args.out / "bench_gemm.md").write_text(
        f"{len(layers)} linear layers, weights {bc.format_bytes(f32_bytes)} in float32, "
        f"{bc.format_bytes(f16_bytes)} as float16 panels; one thread, median of {args.rounds} passes\n\n{md}\n"
    )
    print(bc.render_table(header, table))
    print(f"wrote {args.out}/bench_gemm.json, .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

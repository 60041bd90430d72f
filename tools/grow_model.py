#!/usr/bin/env python
"""Deepen a trained model without changing what it computes: new encoder blocks whose residual branches start at zero.

Issue 13 asks for the largest model that keeps streaming RTF <= 0.05 on one thread with the chosen decoder; a deeper
model trained from scratch costs CPU-days here, while a trained one can grow. Each new block is a fresh block (the
model's own initialisation) with the output projections of its three residual branches (attention out, the conv
module's pointwise out, the feed-forward's outer layer) set to zero, so it adds nothing: the grown model's logits
are the old model's (checked on random features, full-utterance and streamed, before anything is written). Training
then moves those projections off zero first (their gradients are the branches' inputs times the loss's), and the
rest of each new block follows.

    python tools/grow_model.py asr/assets/model/model.safetensors --num-layers 12 --out runs/grow12.init.safetensors
    asr train RECIPE --run-dir runs/grow12 init_from=runs/grow12.init.safetensors model.num_layers=12

``--where spread`` (default) places the new blocks evenly between the old ones (old block i keeps its order);
``end`` appends them after the last. The checkpoint is written in float32 (the new blocks' initial weights are not
float16 values) with the old model's tokenizer, CMVN and features, and ``grown_from`` in its metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import torch

from asr.model import CTCModel
from asr.pipeline import AsrModel, load_asr_model, save_asr_model

logger = logging.getLogger("grow_model")

#: the output projections of a block's residual branches (zeroed in a new block)
BRANCH_OUTPUTS = ("attention.out", "conv.pointwise_out", "ff.outer")


def positions(old: int, new: int, where: str) -> list[int]:
    """The new index of each of ``old`` blocks in a model of ``new`` blocks: ``end`` keeps them first; ``spread``
    puts the added ones evenly in the gaps between them."""
    if where == "end":
        return list(range(old))
    added = new - old
    # the k-th added block goes after old block round((k + 1) * old / (added + 1)) - 1: evenly spaced, never after
    # the last old block (a one-block model has no gap: its new blocks follow it)
    after = [min(max(old - 2, 0), max(0, int((k + 1) * old / (added + 1) + 0.5) - 1)) for k in range(added)]
    out, index = [], 0
    for i in range(old):
        out.append(index)
        index += 1 + sum(1 for a in after if a == i)
    return out


def grow(model: CTCModel, num_layers: int, *, where: str = "spread", seed: int = 0) -> CTCModel:
    """A CTCModel of ``num_layers`` blocks computing what ``model`` computes (see the module docstring)."""
    old = model.config.num_layers
    if num_layers <= old:
        raise ValueError(f"--num-layers must exceed the model's {old} blocks, got {num_layers}")
    if where not in ("spread", "end"):
        raise ValueError(f"where must be 'spread' or 'end', got {where!r}")
    torch.manual_seed(seed)
    grown = CTCModel(dataclasses.replace(model.config, num_layers=num_layers)).eval()
    kept = positions(old, num_layers, where)
    state = grown.state_dict()
    for key, value in model.state_dict().items():
        target = key
        if key.startswith("encoder.blocks."):
            _, _, index, rest = key.split(".", 3)
            target = f"encoder.blocks.{kept[int(index)]}.{rest}"
        if target not in state or state[target].shape != value.shape:
            raise ValueError(f"{key} has no place in the grown model (as {target})")
        state[target] = value.clone()
    new_blocks = sorted(set(range(num_layers)) - set(kept))
    for i in new_blocks:
        for branch in BRANCH_OUTPUTS:
            for leaf in ("weight", "bias"):
                key = f"encoder.blocks.{i}.{branch}.{leaf}"
                if key in state:
                    state[key] = torch.zeros_like(state[key])
    grown.load_state_dict(state)
    logger.info("old blocks at %s of %d; new (identity) blocks at %s", kept, num_layers, new_blocks)
    return grown


@torch.no_grad()
def check_same_function(old: CTCModel, new: CTCModel, *, frames: int = 96, seed: int = 1) -> float:
    """Largest |logit difference| between the two models on random features, full-utterance and streamed in chunks
    of 16 feature frames; ValueError above 1e-5."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(2, frames, old.config.input_dim, generator=g)
    lengths = torch.full((2,), frames)
    worst = (old(feats, lengths)[0] - new(feats, lengths)[0]).abs().max().item()
    s_old, s_new = old.init_state(2), new.init_state(2)
    for start in range(0, frames, 16):
        a, s_old = old.step(feats[:, start : start + 16], s_old)
        b, s_new = new.step(feats[:, start : start + 16], s_new)
        worst = max(worst, (a - b).abs().max().item())
    if worst > 1e-5:
        raise ValueError(f"the grown model's logits differ from the old one's by {worst:g}: not written")
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a model checkpoint (.safetensors)")
    parser.add_argument("--num-layers", type=int, required=True, help="blocks of the grown model")
    parser.add_argument("--where", choices=("spread", "end"), default="spread")
    parser.add_argument("--seed", type=int, default=0, help="initialisation of the new blocks' other weights")
    parser.add_argument("--out", type=Path, required=True, help="the grown checkpoint (.safetensors)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    if not args.model.is_file():
        parser.error(f"{args.model} is not a file")
    bundle = load_asr_model(args.model)
    bundle.model.eval()
    try:
        grown = grow(bundle.model, args.num_layers, where=args.where, seed=args.seed)
    except ValueError as e:
        parser.error(str(e))
    worst = check_same_function(bundle.model, grown)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    extra = {"grown_from": str(args.model), "grown_where": args.where, "grown_seed": args.seed}
    save_asr_model(args.out, AsrModel(grown, bundle.tokenizer, bundle.cmvn, bundle.features, dict(bundle.extra)),
                   extra=extra)  # fmt: skip
    params = sum(p.numel() for p in grown.parameters())
    old_params = sum(p.numel() for p in bundle.model.parameters())
    print(f"{args.model}: {bundle.model.config.num_layers} blocks, {old_params / 1e6:.2f} M parameters -> {args.out}: "
          f"{args.num_layers} blocks, {params / 1e6:.2f} M ({2 * params / 2**20:.1f} MiB in float16); largest logit "
          f"difference {worst:.1e}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

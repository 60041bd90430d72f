"""``asr train RECIPE.yaml [key=value ...] --run-dir DIR [--resume]``: train a CTC model from a recipe.

    asr train recipes/synth/base.yaml --run-dir runs/synth                   # one process (CPU or one GPU)
    asr train recipes/synth/tiny.yaml data.train=data/x optim.lr=3e-3 --run-dir runs/tiny
    asr train recipes/synth/base.yaml --run-dir runs/synth --resume          # continue after a kill
    torchrun --nproc_per_node=8 -m asr.cli train recipes/librispeech/100h.yaml --run-dir runs/ls100

Overrides use dotted keys of :class:`asr.train.config.TrainConfig` with YAML values and apply after the
recipe (and its ``base:`` chain). The run directory receives ``config.yaml`` (the resolved config),
``tokenizer.json``, ``cmvn.safetensors``, ``checkpoints/``, ``metrics.csv``, ``dev.csv`` and
``final.safetensors`` (the averaged model, ready for ``asr eval`` and ``asr transcribe``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Overrides may come before or after the options (asr train R.yaml --run-dir D a=1): plain parse_args
    # stops taking positionals after the first option, so this parser parses intermixed arguments.
    parser.parse_args = parser.parse_intermixed_args  # type: ignore[method-assign]
    parser.add_argument("recipe", type=Path, help="YAML recipe (e.g. recipes/synth/base.yaml)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides with dotted keys and YAML values, e.g. model.num_layers=4 optim.lr=3e-4",
    )
    parser.add_argument(
        "--run-dir", type=Path, required=True, help="folder for checkpoints, logs, final model"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its latest checkpoint"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config as YAML and exit without training",
    )


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def run(args: argparse.Namespace) -> int:
    import yaml

    from asr.configs import config_to_dict, parse_cli_overrides

    if _rank() > 0 and logging.getLogger().level > logging.DEBUG:
        logging.getLogger().setLevel(logging.WARNING)  # only rank 0 logs (unless asked for debug output)
    try:
        from asr.train.trainer import load_train_config

        config = load_train_config(str(args.recipe), parse_cli_overrides(args.overrides))
    except ValueError as exc:
        print(f"asr train: error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(config), sort_keys=False), end="")
        return 0

    from asr.train.trainer import train

    try:
        final = train(config, args.run_dir, resume=args.resume)
    except ValueError as exc:  # bad data source, a run dir in use, a resume with another config, ...
        logger.debug("training failed", exc_info=True)
        print(f"asr train: error: {exc}", file=sys.stderr)
        return 1
    if _rank() == 0:
        print(final)
    return 0

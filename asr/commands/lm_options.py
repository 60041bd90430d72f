"""The decoder options every decoding command shares (``asr eval``, ``asr transcribe``, ``asr live``).

    --lm PATH          an ARPA (.arpa, .arpa.gz) or KenLM binary file, or an LM folder ('asr lm build --out DIR')
    --lexicon FILE     the lexicon for --lm FILE (without it: lexicon-free, the LM must be over the model's tokens)
    --no-lm            no LM: greedy CTC (or prefix beam search with --beam N)
    --lm-weight, --word-score, --blank-penalty, --unk-score, --beam-threshold, --beam    search options

Without --lm or --no-lm the bundled model (no --model) decodes with its bundled LM folder
(``asr/assets/model/lm.json``, when installed); a model given with --model decodes greedily unless --lm is given
(``--lm asr/assets/model`` uses the bundled LM with any model of the same characters). The files are read and
checked here, before any audio is decoded.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
from pathlib import Path

from asr import pipeline

logger = logging.getLogger(__name__)

__all__ = ["add_lm_arguments", "lm_decoder_from_args"]


def add_lm_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoding (lexicon + n-gram LM beam search)")
    group.add_argument(
        "--lm",
        help="ARPA (.arpa/.arpa.gz) or KenLM binary file, or an LM folder from 'asr lm build' "
        "(default: the bundled LM for the bundled model)",
    )
    group.add_argument("--lexicon", help="lexicon for --lm FILE: 'WORD<TAB>T O K E N S' lines (.gz allowed)")
    group.add_argument("--no-lm", action="store_true", help="no LM: greedy CTC, or prefix beam search with --beam N")
    group.add_argument(
        "--beam", type=int, help="beam width: the LM search's (default from the LM folder, else 32), or with --no-lm "
        "the CTC prefix beam's (1 = greedy, the default)"
    )
    group.add_argument("--lm-weight", type=float, help="weight of the LM's log10 probabilities")
    group.add_argument("--word-score", type=float, help="score added per word (negative: fewer, longer words)")
    group.add_argument(
        "--blank-penalty", type=float, help="subtracted from the blank's log posterior in every frame before the "
        "search (more words from a model whose posteriors are not peaky; default from the LM folder, else 0)"
    )
    group.add_argument("--unk-score", type=float, help="score of a word outside the lexicon (default: never)")
    group.add_argument("--beam-threshold", type=float, help="drop hypotheses this far below the best (log)")


def _options(args: argparse.Namespace) -> dict:
    opts = {}
    for arg, field in (
        ("lm_weight", "lm_weight"),
        ("word_score", "word_score"),
        ("blank_penalty", "blank_penalty"),
        ("unk_score", "unk_score"),
        ("beam_threshold", "beam_threshold"),
        ("beam", "beam_size"),
    ):
        value = getattr(args, arg, None)
        if value is not None:
            opts[field] = value
    return opts


def prefix_beam(args: argparse.Namespace) -> int:
    """The CTC prefix beam width for a run without an LM (1: greedy)."""
    return args.beam if args.beam is not None else 1


def lm_decoder_from_args(
    args: argparse.Namespace, tokenizer, *, bundled_model: bool = True, bundled_dir: Path | None = None
):
    """The LMDecoder the options ask for, or None (greedy / prefix beam). ValueError for bad options or files.
    ``bundled_model``: the model is the bundled one (no --model), whose LM is then the default."""
    from asr.decoding.lm_decoder import LMDecoder, LMDecoderConfig
    from asr.lm.folder import LM_JSON, folder_decoder, read_lm_folder

    opts = _options(args)
    if args.beam is not None and args.beam < 1:
        raise ValueError(f"--beam must be >= 1, got {args.beam}")
    for name in ("lm_weight", "word_score", "blank_penalty", "beam_threshold"):
        if name in opts and not math.isfinite(opts[name]):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number, got {opts[name]}")
    if args.no_lm:
        given = [f"--{n}" for n in ("lm", "lexicon") if getattr(args, n)] + [
            f"--{k.replace('_', '-')}" for k in opts if k != "beam_size"
        ]
        if given:
            raise ValueError(f"--no-lm cannot be combined with {', '.join(given)}")
        return None
    if args.lm is None and args.lexicon is None:
        if not bundled_model:
            logger.info("no --lm for this model: %s", "greedy CTC" if prefix_beam(args) == 1 else "CTC prefix beam")
            return None
        bundled = (bundled_dir or pipeline.BUNDLED_MODEL_DIR) / LM_JSON  # (read now: tests move it)
        if not bundled.is_file():
            logger.info("no --lm given and no bundled LM installed: greedy decoding")
            return None
        folder = read_lm_folder(bundled.parent)
        if not folder.fits(tokenizer):
            logger.info("the bundled LM was made for other tokens than this model's: decoding without an LM")
            return None
        return folder_decoder(folder, tokenizer, **opts)
    if args.lm is not None and Path(args.lm).is_dir():
        folder = read_lm_folder(args.lm)
        if args.lexicon is not None:
            opts["lexicon"] = args.lexicon
        return folder_decoder(folder, tokenizer, **opts)
    return LMDecoder(LMDecoderConfig(lm=args.lm, lexicon=args.lexicon, **opts), tokenizer)


def describe(decoder) -> str:
    """One line naming the decoder and its settings (for logs and reports)."""
    if decoder is None:
        return "no LM"
    c = decoder.config
    return (
        f"{c.mode} (lm {c.lm}, lexicon {c.lexicon}, lm_weight {c.lm_weight}, word_score {c.word_score}, "
        + (f"blank_penalty {c.blank_penalty}, " if c.blank_penalty else "")
        + f"beam {c.beam_size})"
    )


def config_dict(decoder) -> dict:
    """The decoder's mode and settings as JSON-ready values (-inf as None)."""
    out = {"mode": decoder.mode}
    for key, value in dataclasses.asdict(decoder.config).items():
        out[key] = None if isinstance(value, float) and math.isinf(value) else value
    return out

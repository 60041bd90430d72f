"""The decoder options every decoding command shares (``asr eval``, ``asr transcribe``, ``asr live``).

    --lm PATH          an ARPA (.arpa, .arpa.gz) or KenLM binary file, or an LM folder ('asr lm build --out DIR')
    --lexicon FILE     the lexicon for --lm FILE (without it: lexicon-free, the LM must be over the model's tokens)
    --no-lm            no LM: greedy CTC (or prefix beam search with --beam N)
    --lm-weight, --word-score, --blank-penalty, --unk-score, --beam, --beam-tokens, --beam-threshold  search options

Without --lm or --no-lm the bundled model (no --model) decodes with its bundled LM folder
(``asr/assets/model/lm.json``, when installed); a model given with --model decodes greedily unless --lm is given
(``--lm asr/assets/model`` uses the bundled LM with any model of the same characters). The files are read and
checked here, before any audio is decoded.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import math
from pathlib import Path

from asr import pipeline

logger = logging.getLogger(__name__)

__all__ = ["Grid", "add_grid_arguments", "add_lm_arguments", "grid_from_args", "lm_decoder_from_args"]


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
    group.add_argument(
        "--beam-tokens", type=token_limit, help="tokens tried per frame, the most likely first, or 'all' (default "
        "from the LM folder, else all); fewer is faster"
    )


# (argument, LMDecoderConfig field) of the search options
_SEARCH_OPTIONS = (
    ("lm_weight", "lm_weight"),
    ("word_score", "word_score"),
    ("blank_penalty", "blank_penalty"),
    ("unk_score", "unk_score"),
    ("beam_threshold", "beam_threshold"),
    ("beam", "beam_size"),
    ("beam_tokens", "beam_size_token"),
)


def token_limit(text: str) -> int | str:
    """--beam-tokens: a count, or "all" (no limit, overriding an LM folder's)."""
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of tokens or 'all', got {text!r}") from None


def _options(args: argparse.Namespace) -> dict:
    opts = {}
    for arg, field in _SEARCH_OPTIONS:
        value = getattr(args, arg, None)
        if value is not None:
            opts[field] = None if value == "all" else value
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
    for name in ("beam", "beam_tokens"):
        value = getattr(args, name, None)
        if value is not None and value != "all" and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("lm_weight", "word_score", "blank_penalty", "beam_threshold"):
        if name in opts and not math.isfinite(opts[name]):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number, got {opts[name]}")
    if args.no_lm:
        given = [f"--{n}" for n in ("lm", "lexicon") if getattr(args, n)] + [
            f"--{arg.replace('_', '-')}" for arg, field in _SEARCH_OPTIONS if field in opts and arg != "beam"
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
        + f"beam {c.beam_size}"
        + (f", {c.beam_size_token} tokens a frame" if c.beam_size_token is not None else "")
        + f", threshold {c.beam_threshold:g})"
    )


def config_dict(decoder) -> dict:
    """The decoder's mode and settings as JSON-ready values (-inf as None)."""
    out = {"mode": decoder.mode}
    for key, value in dataclasses.asdict(decoder.config).items():
        out[key] = None if isinstance(value, float) and math.isinf(value) else value
    return out


# -- tuning grids (asr eval --grid, tools/tune_lm.py) ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Grid:
    """The settings a tuning run decodes: every lm weight x word score x blank penalty x search setting."""

    lm_weights: tuple[float, ...]
    word_scores: tuple[float, ...]
    blank_penalties: tuple[float, ...] | None  # None: the decoder's own
    searches: tuple[dict, ...] | None  # LMDecoderConfig beam options per setting; None: the decoder's own


def add_grid_arguments(parser: argparse.ArgumentParser, *, lm_weights: str, word_scores: str, note: str = "") -> None:
    """The grid's axes as comma-separated lists (``note`` prefixes each help text)."""
    parser.add_argument("--lm-weights", default=lm_weights, help=f"{note}comma-separated LM weights")
    parser.add_argument(
        "--word-scores", default=word_scores, help=f"{note}comma-separated word scores (write --word-scores=-3,-1,0)"
    )
    parser.add_argument(
        "--blank-penalties", help=f"{note}comma-separated blank penalties (default: the decoder's own)"
    )
    parser.add_argument("--beams", help=f"{note}comma-separated beam widths (default: the decoder's own)")
    parser.add_argument(
        "--beam-token-limits", help=f"{note}comma-separated tokens tried per frame, 'all' for no limit (default: the "
        "decoder's own); the search's cost against its accuracy, with --beams and --beam-thresholds"
    )
    parser.add_argument("--beam-thresholds", help=f"{note}comma-separated beam thresholds (default: the decoder's own)")


def _numbers(text: str, flag: str, kind=float, *, allow_all: bool = False) -> list:
    values = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        if allow_all and item == "all":
            values.append(None)
            continue
        try:
            values.append(kind(item))
        except ValueError:
            what = "integers" + (" or 'all'" if allow_all else "") if kind is int else "numbers"
            raise ValueError(f"{flag} must be comma-separated {what}, got {text!r}") from None
    if not values:
        raise ValueError(f"{flag} is empty")
    if not all(v is None or math.isfinite(v) for v in values):
        raise ValueError(f"{flag} must be finite numbers, got {text!r}")
    return values


def grid_from_args(args: argparse.Namespace) -> Grid:
    """The grid the options ask for; ValueError naming the flag for a malformed list."""
    penalties = None if args.blank_penalties is None else tuple(_numbers(args.blank_penalties, "--blank-penalties"))
    axes = []
    for flag, field, kind, rule in (
        ("--beams", "beam_size", int, ">= 1"),
        ("--beam-token-limits", "beam_size_token", int, ">= 1"),
        ("--beam-thresholds", "beam_threshold", float, "> 0"),
    ):
        text = getattr(args, flag[2:].replace("-", "_"))
        if text is None:
            continue
        values = _numbers(text, flag, kind, allow_all=field == "beam_size_token")
        bad = [v for v in values if v is not None and not (v >= 1 if rule == ">= 1" else v > 0)]
        if bad:
            raise ValueError(f"{flag} must be {rule}, got {bad[0]}")
        axes.append([(field, v) for v in values])
    searches = tuple(dict(s) for s in itertools.product(*axes)) if axes else None
    return Grid(
        lm_weights=tuple(_numbers(args.lm_weights, "--lm-weights")),
        word_scores=tuple(_numbers(args.word_scores, "--word-scores")),
        blank_penalties=penalties,
        searches=searches,
    )

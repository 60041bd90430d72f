"""Tune the LM decoder's weights on a dev set: a grid of LM weight x word score (x blank penalty x beam settings), the
table printed and written.

    python tools/tune_lm.py --data data/synth_clean/dev --max-utterances 300 --out runs/lm/tune
    python tools/tune_lm.py --data DEV --lm runs/lm --write runs/lm        # record the best in runs/lm/lm.json
    python tools/tune_lm.py --data DEV --lm 4-gram.arpa.gz --lexicon lexicon.txt --model runs/ls

One full-utterance forward of the set, then every (lm weight, word score, blank penalty) decoded from the same log-probs
(:func:`asr.evaluate.grid_search`); ``grid.json`` holds every row, best first (WER, then CER; with several
``--data`` sets, the mean of their WERs, so that a set of short real clips counts as much as one of long synthetic
sentences; ``--criterion pooled`` ranks by the WER of all their utterances together). ``--blank-penalties``
(default: only the decoder's own) adds the blank penalty to the grid; ``--beams``, ``--beam-token-limits`` and
``--beam-thresholds`` add the search's settings (each row's RTF is the search's own time: ties in WER go to the
cheaper search). ``--write FOLDER`` puts the best setting into
that LM folder's ``lm.json`` (the defaults ``--lm FOLDER`` and the bundled model then use),
with the set it was tuned on. Tune on dev sets only: the test sets are for reporting. ``--lm-weights 0`` tunes the
lexicon-only mode (the LM weighted by 0 is the lexicon without an LM).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from asr.commands.lm_options import (
        add_grid_arguments,
        add_lm_arguments,
        describe,
        grid_from_args,
        lm_decoder_from_args,
    )
    from asr.data.sources import load_utterances
    from asr.evaluate import format_grid, grid_search, write_grid
    from asr.pipeline import load_asr_model, resolve_model_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", action="append", required=True, help="dev set(s): manifest or folder (repeatable)")
    parser.add_argument("--model", help="checkpoint or run dir (default: the bundled model)")
    parser.add_argument("--max-utterances", type=int, help="use the first N utterances of each set")
    add_grid_arguments(parser, lm_weights="0.25,0.5,0.75,1,1.5,2,3", word_scores="-4,-3,-2,-1,0,1")
    parser.add_argument("--out", type=Path, required=True, help="folder for grid.json")
    parser.add_argument("--write", type=Path, metavar="LM_FOLDER", help="record the best pair in this lm.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--criterion", choices=("mean", "pooled"), default="mean",
        help="several --data sets: rank by the mean of their WERs (each set counts alike; default) or by the WER "
        "of all their utterances pooled (a set with more words counts more)",
    )  # fmt: skip
    add_lm_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    try:
        grid = grid_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    model_path = resolve_model_path(args.model)
    bundle = load_asr_model(model_path)
    lm = lm_decoder_from_args(args, bundle.tokenizer)
    if lm is None:
        parser.error("no LM decoder: give --lm (and --lexicon), or install the bundled LM")
    utterances, groups = [], []
    for data in args.data:
        utts = load_utterances(data)
        utts = utts[: args.max_utterances] if args.max_utterances else utts
        utterances += utts
        groups += [data] * len(utts)
    by_set = args.criterion == "mean" and len(args.data) > 1
    rows = grid_search(bundle, utterances, lm, lm_weights=grid.lm_weights, word_scores=grid.word_scores,
                       blank_penalties=grid.blank_penalties, searches=grid.searches,
                       groups=groups if by_set else None)  # fmt: skip
    print(format_grid(rows))
    meta = {"model": str(model_path), "data": args.data, "utterances": len(utterances), "decoder": describe(lm),
            "criterion": "mean of the sets' WER" if by_set else "pooled WER"}  # fmt: skip
    print(f"wrote {write_grid(args.out, rows, meta=meta)}")
    if args.write is not None:
        from asr.lm.folder import LM_JSON, write_lm_json

        path = args.write / LM_JSON
        folder = json.loads(path.read_text(encoding="utf-8"))
        folder.pop("format", None)
        best = rows[0]
        folder["decoder"] = {
            **folder.get("decoder", {}),
            "lm_weight": best["lm_weight"],
            "word_score": best["word_score"],
            "blank_penalty": best["blank_penalty"],
            "beam_size": best["beam_size"],
            "beam_threshold": best["beam_threshold"],
            **({"beam_size_token": best["beam_size_token"]} if best["beam_size_token"] is not None else {}),
        }
        if best["beam_size_token"] is None:
            folder["decoder"].pop("beam_size_token", None)
        folder["tuning"] = {
            "data": args.data,
            "utterances": len(utterances),
            "model": str(model_path.relative_to(REPO) if model_path.is_relative_to(REPO) else model_path),
            "wer": round(best["wer"], 4),
            "cer": round(best["cer"], 4),
            "criterion": meta["criterion"],
            **({"sets": best["sets"]} if by_set else {}),
            "search_rtf": round(best["rtf"], 4),
            "grid": {"lm_weights": list(grid.lm_weights), "word_scores": list(grid.word_scores),
                     "blank_penalties": [lm.config.blank_penalty] if grid.blank_penalties is None
                     else list(grid.blank_penalties),
                     **({"searches": list(grid.searches)} if grid.searches else {})},
        }
        write_lm_json(args.write, folder)
        print(f"recorded lm_weight={best['lm_weight']} word_score={best['word_score']} "
              f"blank_penalty={best['blank_penalty']} beam={best['beam_size']} "
              f"beam_tokens={best['beam_size_token'] or 'all'} beam_threshold={best['beam_threshold']} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""What pruning the bundled LM costs: the same text and vocabulary built at several relative-entropy thresholds,
each decoded with the bundled model and the bundled LM's tuned weights on the dev sets, side by side in one run.

    .venv/bin/python tools/lm_prune_cost.py --out runs/lm-prune            # thresholds 0 (none), 1e-7, 1e-6, 3e-6

Every build reuses the counts of the bundled LM's build folder (``--from``, default runs/lm-bundle-<the bundled
tokenizer's kind>, made by tools/make_lm_bundle.py), so only the estimation and pruning run per threshold (nothing
for the threshold that folder was built with). Each threshold's LM is decoded from the same log-probs (one forward
per set) with the LM weight and word score recorded in the bundled ``lm.json`` (tuned for the pruned LM the bundle
ships; the others are not re-tuned, which favours the shipped one slightly).
Dev sets only: the test sets are for reporting. Writes ``OUT/prune_cost.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "asr" / "assets" / "model"
DEFAULT_SETS = ["synth-dev=data/synth_clean/dev", "realspeech-dev=data/realspeech/realspeech-dev.jsonl"]


def _build(source: Path, out: Path, prune: str, build_args: list[str]) -> None:
    """``asr lm build`` at ``prune`` into ``out``, starting from ``source``'s text and counts."""
    if (out / "lm.json").is_file():
        return
    (out / "work").mkdir(parents=True, exist_ok=True)
    for name in ("text.txt", "counts.txt", "counts.txt.stamp", "lm.arpa", "lm.arpa.stamp"):
        if (source / "work" / name).is_file() and not (out / "work" / name).is_file():
            shutil.copyfile(source / "work" / name, out / "work" / name)
    asr = str(Path(sys.executable).with_name("asr"))
    pruning = [] if float(prune) == 0 else ["--prune", prune]  # 0: not pruned (no --prune)
    cmd = [asr, "lm", "build", *build_args, *pruning, "--out", str(out), "--no-progress"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def _size_mib(folder: Path) -> float:
    return sum((folder / n).stat().st_size for n in ("lm.arpa.gz", "lexicon.txt.gz")) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "lm-prune")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="the bundled LM's build folder (its text and counts are reused; default runs/lm-bundle-<kind>)",
    )
    parser.add_argument("--prune", default="0,1e-7,1e-6,3e-6", help="thresholds (0: not pruned)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=DATA", help="dev sets")
    parser.add_argument("--max-utterances", type=int, default=300, help="first N utterances of each set")
    parser.add_argument("--model", type=Path, default=BUNDLED / "model.safetensors")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import torch

    from asr.data.sources import load_utterances
    from asr.evaluate import grid_search
    from asr.lm.folder import folder_decoder, read_lm_folder
    from asr.pipeline import load_asr_model

    torch.set_num_threads(1)
    bundled = json.loads((BUNDLED / "lm.json").read_text(encoding="utf-8"))
    weight, score = bundled["decoder"]["lm_weight"], bundled["decoder"]["word_score"]
    if args.source is None:
        args.source = REPO / "runs" / f"lm-bundle-{bundled['tokenizer']['kind']}"
    # The build command recorded in the source folder, less its --prune/--out (one LM text and vocabulary for all).
    recorded = json.loads((args.source / "lm.json").read_text(encoding="utf-8"))["build"]["command"].split()[3:]
    build_args, skip = [], False
    for tok in recorded:
        if skip:
            skip = False
        elif tok in ("--prune", "--out"):
            skip = True
        elif tok != "--no-progress":
            build_args.append(tok)

    bundle = load_asr_model(args.model)
    sets = dict(s.split("=", 1) for s in (args.set or DEFAULT_SETS))
    data = {}
    for name, path in sets.items():
        utts = load_utterances(path)
        data[name] = utts[: args.max_utterances] if args.max_utterances else utts

    rows = []
    for prune in args.prune.split(","):
        folder = args.out / f"prune-{prune}"
        _build(args.source, folder, prune, build_args)
        lm_folder = read_lm_folder(folder)
        decoder = folder_decoder(lm_folder, bundle.tokenizer)
        row = {
            "prune": float(prune),
            "ngram_counts": lm_folder.meta["ngram_counts"],
            "size_mib": round(_size_mib(folder), 2),
        }
        for name, utts in data.items():
            best = grid_search(bundle, utts, decoder, lm_weights=[weight], word_scores=[score], progress=False)[0]
            row[name] = {"wer": round(best["wer"], 4), "cer": round(best["cer"], 4), "utterances": len(utts)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    names = list(data)
    print(f"\nLM weight {weight}, word score {score}; model {args.model}")
    print(f"{'prune':>8} {'n-grams (1/2/3)':>28} {'MiB':>7} " + " ".join(f"{n + ' WER/CER':>24}" for n in names))
    for r in rows:
        counts = "/".join(str(c) for c in r["ngram_counts"])
        cells = " ".join(f"{100 * r[n]['wer']:>11.2f} /{100 * r[n]['cer']:>10.2f}" for n in names)
        print(f"{r['prune']:>8g} {counts:>28} {r['size_mib']:>7.2f} {cells}")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"model": str(args.model), "lm_weight": weight, "word_score": score, "sets": sets, "rows": rows}
    (args.out / "prune_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'prune_cost.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

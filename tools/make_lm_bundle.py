"""Build, tune and install the bundled model's LM folder (asr/assets/model/{lm.arpa.gz, lexicon.txt.gz, lm.json}).

    python tools/make_lm_bundle.py                      # build (or reuse) runs/lm-bundle, tune, install, check size
    python tools/make_lm_bundle.py --tune-only          # after the bundled weights change: re-tune and install

1. ``asr lm build`` (the exact command is in BUILD_ARGS below and in lm.json's build.command): the synthetic
   corpus's training sentences (every synth preset's) and general English from Debian packages, every synthetic
   dev/test sentence and real-speech reference left out (asr/lm/text.py), the 40,000 words most frequent in
   English (wordfreq) that the text has, a Kneser-Ney 3-gram pruned with relative entropy ``--prune`` to fit the
   size budget. The LM does not depend on the model's weights, only on its
   characters. Rerunning reuses what is built (runs/lm-bundle/work).
2. tools/tune_lm.py on dev sets only (the synthetic dev split, ``--dev``; and the real-speech dev set when
   data/realspeech/realspeech-dev.jsonl exists) with the bundled model: the best LM weight and word score go
   into lm.json. This is the step to rerun when the bundled weights are replaced.
3. The three files are copied beside the weights, and the bundle's size (weights + LM + lexicon) is checked
   against the 25 MiB budget.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "asr" / "assets" / "model"
BUDGET_MIB = 25.0
SOURCES = ["synth-train", "fortunes", "wordnet", "bible", "jargon", "gcide"]
BUILD_ARGS = [
    *[a for s in SOURCES for a in ("--source", s)],
    "--order", "3", "--vocab-size", "40000", "--vocab-ranking", "wordfreq",
]
FILES = ("lm.arpa.gz", "lexicon.txt.gz", "lm.json")


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def _repo_relative(path: Path) -> str:
    """``path`` relative to the repository (the commands run there) when it is inside it, else as given."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "lm-bundle", help="build folder")
    parser.add_argument("--prune", default="1e-6", help="relative-entropy pruning threshold")
    parser.add_argument("--dev", default="data/synth_clean/dev", help="synthetic dev set (manifest or folder)")
    parser.add_argument("--dev-utterances", type=int, default=300, help="utterances of each dev set to tune on")
    parser.add_argument("--tune-only", action="store_true", help="skip the build: re-tune runs/lm-bundle")
    parser.add_argument("--lm-weights", default="0.5,0.75,1,1.25,1.5,2")
    parser.add_argument("--word-scores", default="-2,-1.5,-1,-0.5,0")
    args = parser.parse_args(argv)
    asr = str(Path(sys.executable).with_name("asr"))
    out = _repo_relative(args.out)  # lm.json records the build command: no machine's absolute path in it
    if not args.tune_only:
        _run([asr, "lm", "build", *BUILD_ARGS, "--prune", args.prune, "--out", out, "--no-progress"])
    dev = [args.dev] + [p for p in ["data/realspeech/realspeech-dev.jsonl"] if (REPO / p).is_file()]
    tune = [sys.executable, "tools/tune_lm.py", "--lm", str(args.out), "--out", str(args.out / "tune"),
            "--write", str(args.out), "--max-utterances", str(args.dev_utterances),
            f"--lm-weights={args.lm_weights}", f"--word-scores={args.word_scores}"]
    for d in dev:
        tune += ["--data", d]
    _run(tune)
    for name in FILES:
        shutil.copyfile(args.out / name, MODEL_DIR / name)
    record = MODEL_DIR / "lm.json"  # a build made before the relative --out: its command still names this checkout
    record.write_text(record.read_text().replace(f"--out {REPO}/", "--out "))
    sizes = {p.name: p.stat().st_size for p in [MODEL_DIR / "model.safetensors", *(MODEL_DIR / n for n in FILES)]}
    total = sum(sizes.values()) / 2**20
    for name, size in sizes.items():
        print(f"{name:20s} {size / 2**20:7.2f} MiB")
    print(f"{'total':20s} {total:7.2f} MiB (budget {BUDGET_MIB} MiB)")
    if total > BUDGET_MIB:
        print("over budget: prune harder (--prune 3e-7)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

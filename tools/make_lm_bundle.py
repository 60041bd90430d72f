"""Build, tune and install the bundled model's LM folder (asr/assets/model/{lm.arpa.gz, lexicon.txt.gz, lm.json}).

    python tools/make_lm_bundle.py                      # build (or reuse) runs/lm-bundle, tune, install, check size
    python tools/make_lm_bundle.py --tune-only          # after the bundled weights change: re-tune and install
    python tools/make_lm_bundle.py --model CKPT --no-install   # a folder for another model's tokens, not installed

The folder is made for one tokenizer (its lexicon spells the words in the model's characters, or as CMUdict
pronunciations for a phone model), so the build folder is per tokenizer kind: runs/lm-bundle-char,
runs/lm-bundle-phone. A model whose tokens are not the ones a folder was made for is refused, naming both.

1. ``asr lm build`` (the exact command is in BUILD_ARGS below and in lm.json's build.command): the synthetic
   corpus's training sentences (every synth preset's) and general English from Debian packages, every synthetic
   dev/test sentence and real-speech reference left out (asr/lm/text.py), the 40,000 words most frequent in
   English (wordfreq) that the model's tokenizer can spell, a Kneser-Ney 3-gram pruned with relative entropy
   ``--prune`` to fit the size budget. The LM does not depend on the model's weights, only on its tokens.
   Rerunning reuses what is built (OUT/work).
2. tools/tune_lm.py on dev sets only (the synthetic dev split, ``--dev``; and the real-speech dev set when
   data/realspeech/realspeech-dev.jsonl exists) with the bundled model: the best LM weight and word score go
   into lm.json. This is the step to rerun when the bundled weights are replaced.
3. The three files are copied beside the weights (not with ``--no-install``), and the bundle's size (weights + LM +
   lexicon) is checked against the 25 MiB budget.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from asr.commands.lm_options import token_limit
from asr.lm.folder import folder_tokens

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "asr" / "assets" / "model"
BUDGET_MIB = 25.0
SOURCES = ["synth-train", "fortunes", "wordnet", "bible", "jargon", "gcide"]
BUILD_ARGS = [
    *[a for s in SOURCES for a in ("--source", s)],
    "--order", "3", "--vocab-size", "40000", "--vocab-ranking", "wordfreq",
]
FILES = ("lm.arpa.gz", "lexicon.txt.gz", "lm.json")
# The bundled decoder's beam. Measured on realspeech-dev with phones1 epoch 4, LM weights (1.5, -2), streaming, one
# thread, beside a training run (session 23): beam 32 WER 86.3 / CER 53.2 at RTF 0.025; 96: 82.1 / 49.4 at 0.032;
# 128: 80.7 / 48.6 at 0.037; the character bundle 92.1 / 59.5 at 32, 90.5 / 55.0 at 96. 96 takes most of the gain
# for a third more search time; the RTF target is 0.05.
# Session 28, phones2 epoch 3, weights (1.5, -2, blank 1), the search alone on the tuning sets (250 utterances each of
# synth-dev and realspeech-dev; tools/tune_lm.py --beams 96,192,256 --beam-token-limits 10,all --beam-thresholds
# 15,25; docs/results.md section 3): trying only the 10 likeliest of the 40 phones a frame and a threshold of 15
# leave the WERs within 0.4 of trying all at 25 and cut the search's time ~3x; the time saved buys beam 192: mean WER
# 49.0 against 50.0 for (96, all, 25), at half its search time.
BEAM = 192
BEAM_TOKENS = 10
BEAM_THRESHOLD = 15.0
# The weights' grid, tuned on this many utterances of each dev set (synth-dev and realspeech-dev) by the mean of the
# two sets' WERs (pooled, synth-dev's long sentences chose the weights). The same grid, criterion and decoder tune a
# candidate in make_bundle's select, so a candidate and the committed model are compared at the weights each would
# ship with. Sessions 28 and 30 tuned the phone bundles on it; the earlier default (0.5..2, -2..0, no blank penalty)
# chose 2 / -1.5 / 0 for kokoro1, which read realspeech-dev at WER 65.0 against 61.0 on this grid (a phone lexicon
# leans on the LM, and a blank penalty keeps short words).
TUNE_UTTERANCES = 250
TUNE_LM_WEIGHTS = "1.5,2,2.5,3"
TUNE_WORD_SCORES = "-3,-2,-1"
TUNE_BLANK_PENALTIES = "0.5,1,2"
TUNE_CRITERION = "mean"


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def _repo_relative(path: Path) -> str:
    """``path`` relative to the repository (the commands run there) when it is inside it, else as given."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _tokens(model: str | None) -> tuple[str, tuple[str, ...]]:
    """(kind, tokens) of a checkpoint's tokenizer (the bundled model's when ``model`` is None)."""
    from asr.pipeline import load_asr_model, resolve_model_path

    tokenizer = load_asr_model(resolve_model_path(model)).tokenizer
    return tokenizer.kind, tuple(tokenizer.tokens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="the model the folder is for (default: the bundled model)")
    parser.add_argument("--out", type=Path, help="build folder (default: runs/lm-bundle-<tokenizer kind>)")
    parser.add_argument("--prune", default="1e-6", help="relative-entropy pruning threshold")
    parser.add_argument("--dev", default="data/synth_clean/dev", help="synthetic dev set (manifest or folder)")
    parser.add_argument("--dev-utterances", type=int, default=TUNE_UTTERANCES,
                        help=f"utterances of each dev set to tune on ({TUNE_UTTERANCES})")
    parser.add_argument("--tune-only", action="store_true", help="skip the build: re-tune the build folder")
    parser.add_argument("--no-tune", action="store_true", help="build only (the folder keeps the default weights)")
    parser.add_argument("--no-install", action="store_true", help="leave asr/assets/model as it is")
    parser.add_argument("--lm-weights", default=TUNE_LM_WEIGHTS, help=f"LM weights tried ({TUNE_LM_WEIGHTS})")
    parser.add_argument("--word-scores", default=TUNE_WORD_SCORES, help=f"word scores tried ({TUNE_WORD_SCORES})")
    parser.add_argument("--blank-penalties", default=TUNE_BLANK_PENALTIES,
                        help=f"blank penalties tried, 0: none ({TUNE_BLANK_PENALTIES})")
    parser.add_argument("--beam", type=int, default=BEAM, help=f"decoder beam, recorded with the weights ({BEAM})")
    parser.add_argument("--beam-tokens", type=token_limit, default=BEAM_TOKENS,
                        help=f"tokens tried per frame or 'all', recorded with the weights ({BEAM_TOKENS})")
    parser.add_argument("--beam-threshold", type=float, default=BEAM_THRESHOLD,
                        help=f"beam threshold, recorded with the weights ({BEAM_THRESHOLD:g})")
    args = parser.parse_args(argv)
    if args.tune_only and args.no_tune:
        parser.error("--tune-only and --no-tune leave nothing to do")
    kind, tokens = _tokens(args.model)
    build_dir = args.out if args.out is not None else REPO / "runs" / f"lm-bundle-{kind}"
    asr = str(Path(sys.executable).with_name("asr"))
    out = _repo_relative(build_dir)  # lm.json records the build command: no machine's absolute path in it
    model = ["--model", args.model] if args.model else []
    if args.tune_only:
        made_for = folder_tokens(build_dir)
        if made_for is None:
            parser.error(f"--tune-only: {build_dir} holds no LM folder (lm.json); build it first (without --tune-only)")
        if made_for != tokens:
            parser.error(f"--tune-only: {build_dir} was made for the tokens {' '.join(made_for[1:])!r}, the model's "
                         f"are {' '.join(tokens[1:])!r}; build a folder for it (without --tune-only)")  # fmt: skip
    else:
        _run([asr, "lm", "build", *BUILD_ARGS, "--prune", args.prune, *model, "--out", out, "--no-progress"])
    if not args.no_tune:
        dev = [args.dev] + [p for p in ["data/realspeech/realspeech-dev.jsonl"] if (REPO / p).is_file()]
        tune = [sys.executable, "tools/tune_lm.py", "--lm", str(build_dir), "--out", str(build_dir / "tune"),
                "--write", str(build_dir), "--max-utterances", str(args.dev_utterances), *model,
                f"--beams={args.beam}", f"--beam-token-limits={args.beam_tokens}",
                f"--beam-thresholds={args.beam_threshold}",
                f"--lm-weights={args.lm_weights}", f"--word-scores={args.word_scores}",
                f"--blank-penalties={args.blank_penalties}", "--criterion", TUNE_CRITERION]  # fmt: skip
        for d in dev:
            tune += ["--data", d]
        _run(tune)
    if args.no_install:
        print(f"LM folder for the {kind} tokenizer: {build_dir} (not installed)")
        return 0
    if args.model and _tokens(None)[1] != tokens:
        parser.error("the folder is for --model's tokens, not the bundled model's: install the model first, or "
                     "pass --no-install")  # fmt: skip
    for name in FILES:
        shutil.copyfile(build_dir / name, MODEL_DIR / name)
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

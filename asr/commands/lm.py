"""``asr lm build`` (an n-gram LM + lexicon folder) and ``asr lm lexicon`` (a lexicon for a model's tokens).

    asr lm build --source synth-train --source fortunes --text more.txt --order 3 --vocab-size 40000 \\
        --prune 1e-7 --out runs/lm                       # tokenizer of the bundled model (or --model CKPT)
    asr lm build --text corpus.txt --order 6 --units tokens --out runs/charlm      # for lexicon-free decoding
    asr lm lexicon --lm 4-gram.arpa.gz --out lexicon.txt --model runs/ls          # spell an LM's words

``build`` reads the text (built-in Debian sources and/or text files), leaves out every reserved sentence (the
synthetic corpus's dev/test sentences, the bundled and pocketsphinx test transcripts and each ``--exclude``
manifest's; see :mod:`asr.lm.text`), trains a Kneser-Ney ARPA LM with kaldingram (:mod:`asr.lm.build`), and
writes ``lm.arpa.gz``, ``lexicon.txt.gz`` and ``lm.json`` in ``--out``, which ``--lm DIR`` then uses.
Rerunning with the same text and settings reuses the trained LM (``--out``/work/). For a phone model the lexicon
holds every CMUdict pronunciation of a word, and espeak-ng's (mapped onto ARPAbet, :mod:`asr.text.g2p`) for a word
CMUdict lacks; ``--no-g2p`` leaves those words out (``<unk>`` in the LM).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


NO_G2P_HELP = (
    "phone models: leave out the words CMUdict lacks instead of spelling them with espeak-ng's rules (asr.text.g2p)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from asr.lm.text import SOURCES

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="train an n-gram LM (ARPA) and write it with its lexicon to --out")
    b.add_argument("--text", action="append", default=[], metavar="FILE", help="text file (repeatable; .gz ok)")
    b.add_argument(
        "--source", action="append", default=[], choices=SOURCES, help="built-in text source (repeatable)"
    )
    b.add_argument("--order", type=int, required=True, help="n-gram order (1-6)")
    b.add_argument("--out", type=Path, required=True, help="output folder (lm.arpa.gz, lexicon.txt.gz, lm.json)")
    b.add_argument("--prune", type=float, help="relative-entropy pruning threshold (e.g. 1e-7); default none")
    b.add_argument("--vocab-size", type=int, help="keep the N most frequent words (others -> <unk>); default all")
    b.add_argument(
        "--vocab-ranking", choices=("text", "wordfreq"), default="text",
        help="rank words by their count in the text (default) or by wordfreq's English frequency",
    )
    b.add_argument(
        "--units", choices=("words", "tokens"), default="words",
        help="words: word LM + lexicon (default); tokens: an LM over the model's tokens (lexicon-free decoding)",
    )
    b.add_argument(
        "--exclude", action="append", default=[], metavar="MANIFEST",
        help="also keep this manifest's transcripts out of the text (repeatable; e.g. real-speech dev/test sets)",
    )
    b.add_argument("--model", help="the model whose tokenizer spells the lexicon (default: the bundled model)")
    b.add_argument("--no-g2p", action="store_true", help=NO_G2P_HELP)
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    lx = sub.add_parser("lexicon", help="spell words (an ARPA file's unigrams or a word list) for a model")
    src = lx.add_mutually_exclusive_group(required=True)
    src.add_argument("--lm", help="ARPA file (.arpa/.arpa.gz) whose unigrams to spell")
    src.add_argument("--words", help="word list, one word per line (first field)")
    lx.add_argument("--out", type=Path, required=True, help="lexicon file to write (.gz to compress)")
    lx.add_argument("--model", help="the model whose tokenizer spells the words (default: the bundled model)")
    lx.add_argument("--no-g2p", action="store_true", help=NO_G2P_HELP)


def _tokenizer(model: str | None):
    from asr.pipeline import load_asr_model, resolve_model_path

    return load_asr_model(resolve_model_path(model)).tokenizer


def _build(args: argparse.Namespace) -> int:
    from asr.lm.build import BuildConfig, build_lm_folder
    from asr.lm.text import lm_sentences, reserved_sentences

    if not args.text and not args.source:
        raise ValueError("give some text: --text FILE and/or --source NAME")
    config = BuildConfig(
        order=args.order,
        vocab_size=args.vocab_size,
        vocab_ranking=args.vocab_ranking,
        prune=args.prune,
        units=args.units,
        g2p=not args.no_g2p,
    )
    for path in args.text:
        if not Path(path).is_file():
            raise ValueError(f"--text {path!r} does not exist")
    tokenizer = _tokenizer(args.model)
    reserved = reserved_sentences(args.exclude)
    stats: dict[str, int] = {}
    sentences = lm_sentences(sources=args.source, text_files=args.text, reserved=reserved, stats=stats)
    meta = {
        "command": "asr lm build " + " ".join(sys.argv[3:] if sys.argv[1:3] == ["lm", "build"] else []),
        "sources": args.source,
        "text_files": args.text,
        "excluded": {"reserved_sentences": reserved.sources, "text": stats},
    }
    result = build_lm_folder(sentences, args.out, tokenizer, config, meta=meta, progress=not args.no_progress)
    for key, value in stats.items():
        print(f"{key}: {value}")
    print(
        f"wrote {args.out}/lm.arpa.gz (order {result['order']}, n-grams {result['ngram_counts']}), "
        + (f"{args.out}/lexicon.txt.gz ({result['lexicon_words']} words), " if result["lexicon"] else "")
        + f"{args.out}/lm.json"
    )
    return 0


def _lexicon(args: argparse.Namespace) -> int:
    from asr.decoding.lexicon import spell_words, write_lexicon
    from asr.decoding.lm import read_lm_info

    tokenizer = _tokenizer(args.model)
    if args.lm is not None:
        info = read_lm_info(args.lm)
        if info.vocab is None:
            raise ValueError(f"{args.lm} is a KenLM binary file: give its ARPA file, or --words with its word list")
        words = sorted(w for w in info.vocab if w not in ("<s>", "</s>", "<unk>", "<UNK>"))
    else:
        path = Path(args.words)
        if not path.is_file():
            raise ValueError(f"--words {args.words!r} does not exist")
        words = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    lexicon, missing = spell_words(words, tokenizer, g2p=not args.no_g2p)
    if not len(lexicon):
        raise ValueError(f"the model's {tokenizer.kind} tokenizer can spell none of the {len(words)} words")
    write_lexicon(args.out, lexicon)
    print(f"wrote {args.out}: {len(lexicon)} words")
    if missing:
        print(f"{len(missing)} words cannot be spelled with the model's tokens and are left out, e.g. {missing[:10]}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _build(args) if args.action == "build" else _lexicon(args)
    except ValueError as exc:
        print(f"asr lm {args.action}: error: {exc}", file=sys.stderr)
        return 2

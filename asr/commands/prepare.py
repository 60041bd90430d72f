"""``asr prepare CORPUS SRC --out DIR``: corpora in their own layouts -> JSONL manifests + a summary.

    asr prepare librispeech /data/LibriSpeech --out data/libri            # one manifest per subset found
    asr prepare librispeech /data/LibriSpeech/dev-clean --out data/libri  # or just one subset
    asr prepare kaldi /kaldi/egs/wsj/s5/data/test_dev93 --out data/wsj --name dev93 --text-format wsj
    asr prepare wsj /data/WSJ0 /data/WSJ1 --out data/wsj                  # si284, dev93, eval92
    asr prepare realspeech --out data/realspeech    # real speech from Debian packages: legacy + train/dev/test

Writes ``DIR/<name>.jsonl`` per manifest, and merges into ``DIR/summary.json`` (with ``summary.txt``, a
readable table) what was read, what was skipped and why, and what was kept but flagged (characters outside
the alphabet after normalisation, by default ``A-Z`` and ``'``).

Every kept utterance's audio is then decoded once (``--no-verify`` skips this): headers alone let truncated or
corrupt files, NaN/inf samples and clips under 55 ms through, to fail later in training or evaluation. A Kaldi
``wav.scp`` whose recordings are shell commands (``cmd |``) is read only with ``--allow-pipes``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from asr.commands._args import positive_int
from asr.data.manifest import (
    DEFAULT_ALPHABET,
    SUMMARY_JSON,
    SUMMARY_TXT,
    PrepareReport,
    Utterance,
    check_utterances,
    format_summary,
    is_pipe,
    update_summary,
    verify_audio,
    write_manifest,
)

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="corpus", required=True, metavar="CORPUS")

    p = sub.add_parser("librispeech", help="a LibriSpeech subset folder, or a root holding several subsets")
    p.add_argument("src", type=Path, help="subset folder (train-clean-100/...) or the LibriSpeech root")
    _common(p)

    p = sub.add_parser("kaldi", help="a Kaldi data dir (wav.scp, text, optional segments/utt2spk/utt2dur)")
    p.add_argument("src", type=Path, help="the data dir")
    p.add_argument("--name", help="manifest name (default: the data dir's name)")
    p.add_argument(
        "--text-format",
        choices=("plain", "wsj"),
        default="plain",
        help="'wsj': rewrite Kaldi WSJ transcripts (<NOISE>, ,COMMA, *WORD*) to the spoken words",
    )
    p.add_argument(
        "--audio-root",
        type=Path,
        help="folder relative wav.scp paths start from (default: current directory)",
    )
    p.add_argument(
        "--allow-pipes",
        action="store_true",
        help="run the shell commands of a wav.scp in the 'cmd |' form (they come from the data: check them first)",
    )
    _common(p)

    p = sub.add_parser("wsj", help="the LDC WSJ0/WSJ1 tree(s): si284, dev93, eval92 as Kaldi/ESPnet define them")
    p.add_argument("src", type=Path, nargs="+", help="folder(s) holding wsj0/ and wsj1/ (or the LDC disks)")
    p.add_argument("--sets", default="si284,dev93,eval92", help="comma-separated: si284, si84, dev93, eval92")
    _common(p)

    p = sub.add_parser(
        "realspeech",
        help="real recorded English speech from Debian packages -> realspeech.jsonl (the legacy 20 recordings) "
        "and realspeech-{train,dev,test}.jsonl (every package, labelled, split by speaker group)",
    )
    p.add_argument("src", type=Path, nargs="?", default=Path("/"), help="root the Debian files are under (default: /)")
    p.add_argument(
        "--legacy-only",
        action="store_true",
        help="only realspeech.jsonl (pocketsphinx-testdata + alsa-utils; seconds, no recognizers)",
    )
    p.add_argument(
        "--packages",
        help="comma-separated subset of the speech packages to read (default: all; see asr.data.realspeech_sources)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _common(p)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder for <name>.jsonl and summary.json")
    p.add_argument(
        "--alphabet",
        default=DEFAULT_ALPHABET,
        help="characters allowed after normalize_text, besides the space (default: A-Z and ')",
    )
    p.add_argument("--no-alphabet-check", action="store_true", help="do not check transcripts' characters")
    p.add_argument(
        "--drop-out-of-alphabet",
        action="store_true",
        help="skip utterances with characters outside the alphabet (default: keep them, flagged)",
    )
    p.add_argument("--jobs", type=positive_int, default=4, help="threads reading audio (default 4)")
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="trust the audio headers: skip decoding every file once (faster; bad files then fail later)",
    )


def _read(args: argparse.Namespace) -> list[tuple[str, list[Utterance], PrepareReport]]:
    """``[(manifest name, utterances, report)]`` for the chosen corpus."""
    out: list[tuple[str, list[Utterance], PrepareReport]] = []
    if args.corpus == "librispeech":
        from asr.data.librispeech import find_librispeech_subsets, read_librispeech_subset

        for subset in find_librispeech_subsets(args.src):
            report = PrepareReport(name=subset.name, corpus="librispeech", source=str(subset.resolve()))
            out.append((subset.name, read_librispeech_subset(subset, report, jobs=args.jobs), report))
    elif args.corpus == "kaldi":
        from asr.data.kaldi import read_kaldi_dir

        name = args.name or args.src.resolve().name
        report = PrepareReport(name=name, corpus="kaldi", source=str(args.src.resolve()))
        utts = read_kaldi_dir(
            args.src, report, audio_root=args.audio_root, text_format=args.text_format, jobs=args.jobs
        )
        out.append((name, utts, report))
    elif args.corpus == "wsj":
        from asr.data.wsj import read_wsj

        sets = tuple(s.strip() for s in args.sets.split(",") if s.strip())
        for name, (utts, report) in read_wsj(args.src, sets=sets, jobs=args.jobs).items():
            out.append((name, utts, report))
    elif args.corpus == "realspeech":
        out += _read_realspeech(args)
    else:  # argparse restricts the choices
        raise ValueError(f"unknown corpus {args.corpus!r}")
    return out


def _read_realspeech(args: argparse.Namespace) -> list[tuple[str, list[Utterance], PrepareReport]]:
    from asr.data.realspeech import ALSA_DIR, POCKETSPHINX_DIR, read_realspeech

    root = args.src
    ps, alsa = root / POCKETSPHINX_DIR.relative_to("/"), root / ALSA_DIR.relative_to("/")
    report = PrepareReport(name="realspeech", corpus="realspeech", source=f"{ps}, {alsa}")
    legacy = read_realspeech(args.out, report, pocketsphinx_dir=ps, alsa_dir=alsa)
    out = [("realspeech", legacy, report)]
    if args.legacy_only:
        return out
    from asr.data.realspeech_splits import build_realspeech_sets

    packages = tuple(p.strip() for p in args.packages.split(",") if p.strip()) if args.packages else None
    sets = build_realspeech_sets(root, args.out, legacy, packages=packages, progress=not args.no_progress)
    args.realspeech_sets = sets  # for the README written after the manifests (run)
    args.realspeech_legacy = legacy
    out.append(("realspeech-sources", [], sets.sources_report))
    out += [(f"realspeech-{split}", sets.utterances[split], sets.reports[split]) for split in sets.utterances]
    return out


def _write_realspeech_readme(args: argparse.Namespace, written: dict[str, list[Utterance]]) -> None:
    import shlex
    import sys

    from asr.data.realspeech_splits import SPLITS, format_readme

    sets = args.realspeech_sets
    utts = {split: written.get(f"realspeech-{split}", []) for split in SPLITS}
    command = shlex.join(["asr", *sys.argv[1:]]) if sys.argv[1:2] == ["prepare"] else "asr prepare realspeech"
    text = format_readme(sets, utts, legacy=args.realspeech_legacy, command=command)
    path = args.out / "README.md"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    print(f"wrote {path}")


def _pipes_in(wav_scp: Path) -> list[str]:
    """The pipe commands (``cmd |``) of a wav.scp."""
    if not wav_scp.is_file():
        return []
    lines = wav_scp.read_bytes().decode("utf-8", errors="replace").splitlines()
    return [value for line in lines if len(parts := line.split(None, 1)) == 2 and is_pipe(value := parts[1])]


def run(args: argparse.Namespace) -> int:
    from asr.audio import allowing_pipes, pipes_allowed

    allow = getattr(args, "allow_pipes", False)
    if args.corpus == "kaldi" and not allow and not pipes_allowed():
        pipes = _pipes_in(args.src / "wav.scp")
        if pipes:
            print(
                f"asr prepare: error: {args.src / 'wav.scp'} holds {len(pipes)} pipe command(s) (e.g. {pipes[0]!r}); "
                "they are shell commands from the data, run only with --allow-pipes (check them first)",
                file=sys.stderr,
            )
            return 2
    try:
        with allowing_pipes(allow):
            return _run(args)
    except ValueError as exc:  # a source that is not the corpus it claims to be, ...
        print(f"asr prepare: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    alphabet = None if args.no_alphabet_check else args.alphabet
    entries = {}
    empty = []
    written: dict[str, list[Utterance]] = {}
    for name, utts, report in _read(args):
        if name == "realspeech-sources":  # a record of what the package readers passed over, not a manifest
            entries[name] = report.to_json([]) | {"manifest": None}
            continue
        utts = check_utterances(utts, report, alphabet=alphabet, drop_out_of_alphabet=args.drop_out_of_alphabet)
        if args.verify:
            progress = not getattr(args, "no_progress", False)
            utts = verify_audio(utts, report, jobs=args.jobs, progress=progress, base_dir=args.out.resolve())
        else:
            report.note("audio not decoded (--no-verify): only the headers were read")
        utts = sorted(utts, key=lambda u: u.id)
        if utts:
            path = write_manifest(args.out / f"{name}.jsonl", utts)
            logger.info("wrote %s: %d utterances, %.2f h", path, len(utts), sum(u.duration for u in utts) / 3600)
        else:
            empty.append(name)
            logger.error("%s: no usable utterances (see %s)", name, args.out / SUMMARY_TXT)
        entries[name] = report.to_json(utts)
        written[name] = utts
        if not utts:
            entries[name]["manifest"] = None
    update_summary(args.out, entries)
    if getattr(args, "realspeech_sets", None) is not None:
        _write_realspeech_readme(args, written)
    print(format_summary(entries, examples=3), end="")
    print(f"summary: {args.out / SUMMARY_JSON} ({args.out / SUMMARY_TXT})")
    return 1 if empty else 0

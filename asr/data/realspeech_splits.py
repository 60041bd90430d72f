"""The real-speech train / dev / test sets: every recording of :mod:`asr.data.realspeech_sources` plus the
legacy 20-recording set (:mod:`asr.data.realspeech`), with a reference each (:mod:`asr.data.realspeech_labels`),
split by speaker group so that no voice is heard in two splits.

Split rule (deterministic, no randomness): :data:`SPLIT_OF_GROUP` names the groups of dev and test; every other
group is training. Within dev and test only reliable references are kept (metadata or two independent sources
agreeing); a dev/test clip whose reference is a Whisper pseudo-label alone is left out and reported
(``unreliable_reference``), never moved to another split. Training keeps pseudo-labels that pass the gate.

- test: the legacy set (pocketsphinx-testdata's LibriVox, cards and the two raw recordings; ALSA's channel names:
  the clips the README and the demo quote), codec2's read sentences (Harvard sentences, 8 kHz), klettres' British
  English speaker, tuxpaint's spoken names, letters and digits, hedgewars' Classic voice and nexuiz's robotic
  announcer (their lines confirmed by the file names).
- dev (model selection, LM weights): klettres' other English speaker, ktuberling, warzone2100's narrator
  (radio-processed, 11 kHz; her lines confirmed by the game's audio.cfg comments or by both recognizers),
  hedgewars' Singer and nexuiz's male announcer.
- train: the rest, with pseudo-labels: megaglest, nexuiz's tutorial and team-call voices, codec2's radio
  amateurs, warzone2100's other voices, the other hedgewars packs, freedroidrpg.

The dev/test groups were chosen, once, from how many of each group's clips have reliable references (a group in
dev or test loses its pseudo-labelled clips): the test groups are those whose words the packages give, dev takes
the largest group of confirmed labels. Groups with few reliable clips stay in training.

Manifest lines: ``id``, ``audio`` (the 16 kHz FLAC, relative to the manifest's folder), ``duration``, ``text``
(normalised reference), ``speaker`` (the group; the legacy clips keep their legacy speaker), and ``extra``:
``package``, ``licence``, ``group``, ``origin`` (the file, or ``archive::member``), ``reference_kind``,
``reference_source`` / ``hint`` when there is one, ``whisper`` (text, avg_logprob, no_speech_prob,
compression_ratio) and ``pocketsphinx`` (text).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from asr.data.manifest import PrepareReport, Utterance
from asr.data.realspeech import RAW_SAMPLE_RATE
from asr.data.realspeech_labels import (
    HAMA_MAX_PER,
    MIN_AGREED_WORDS,
    PSEUDO_LABEL_GATE,
    Decision,
    PseudoLabelGate,
    agree,
    choose_reference,
    convert_clip,
    phone_agreement,
    read_labels,
)
from asr.data.realspeech_sources import PACKAGES, SourceClip, read_sources
from asr.text.normalize import normalize_text

logger = logging.getLogger(__name__)

__all__ = ["SPLITS", "SPLIT_OF_GROUP", "RealSpeechSets", "build_realspeech_sets", "legacy_clips", "split_of"]

SPLITS = ("train", "dev", "test")
AUDIO_SUBDIR = "audio"
LABEL_SUBDIR = "labels"

# Groups of dev and test; every other group is training.
SPLIT_OF_GROUP: dict[str, str] = {
    # test: the legacy set, and groups whose references are nearly all the packages' own words
    "pocketsphinx/librivox": "test",
    "pocketsphinx/cards": "test",
    "pocketsphinx/raw": "test",
    "alsa": "test",
    "codec2/sentences": "test",
    "klettres/en_GB": "test",
    "tuxpaint": "test",
    "hedgewars/Classic": "test",
    "nexuiz/announcer-robotic": "test",
    # dev: more minutes, more of them confirmed labels (the warzone2100 narrator's)
    "klettres/en": "dev",
    "ktuberling/en": "dev",
    "warzone2100/narrator": "dev",
    "hedgewars/Singer": "dev",
    "nexuiz/announcer-male": "dev",
}


def split_of(group: str) -> str:
    """The split a speaker group belongs to (:data:`SPLIT_OF_GROUP`, else ``train``)."""
    return SPLIT_OF_GROUP.get(group, "train")


def legacy_clips(utts: Sequence[Utterance]) -> list[SourceClip]:
    """The legacy set's utterances as clips with metadata references (same ids, same words)."""
    out = []
    for u in utts:
        group = u.extra.get("group", "")
        package = "alsa-utils" if group == "alsa" else "pocketsphinx-testdata"
        source = "file name" if group == "alsa" else "pocketsphinx-testdata transcription"
        if "original" in u.extra:  # a headerless .raw recording (RAW_SAMPLE_RATE) the legacy reader converted
            origin, rate = u.extra["original"], RAW_SAMPLE_RATE
        else:
            origin, rate = u.audio, None
        out.append(SourceClip(u.id, package, group, origin, reference=u.text, reference_source=source, raw_rate=rate))
    return out


@dataclass
class RealSpeechSets:
    """What :func:`build_realspeech_sets` made: a manifest's utterances and report per split, and the checks."""

    utterances: dict[str, list[Utterance]]  # split -> utterances (sorted by id)
    reports: dict[str, PrepareReport]  # split -> report (skips of that split's groups)
    sources_report: PrepareReport  # what the package readers read and passed over
    checks: dict[str, Any] = field(default_factory=dict)  # the rules measured on the metadata-labelled clips
    clips: dict[str, SourceClip] = field(default_factory=dict)  # every clip read, by id


def build_realspeech_sets(
    root: Path,
    out_dir: Path,
    legacy: Sequence[Utterance],
    *,
    packages: tuple[str, ...] | None = None,
    recognizers: dict | None = None,
    gate: PseudoLabelGate = PSEUDO_LABEL_GATE,
    progress: bool = True,
) -> RealSpeechSets:
    """Read the packages, convert, label (cached in ``out_dir/labels``), choose references, split."""
    out_dir = Path(out_dir)
    sources_report = PrepareReport(name="realspeech-sources", corpus="realspeech", source=str(root))
    clips = legacy_clips(legacy) + read_sources(Path(root), sources_report, packages=packages)
    legacy_speaker = {u.id: u.speaker for u in legacy}
    audio_dir = out_dir / AUDIO_SUBDIR
    flac: dict[str, Path] = {}
    reports = {s: PrepareReport(name=f"realspeech-{s}", corpus="realspeech", source=str(root)) for s in SPLITS}
    for clip in _progress(clips, "convert to 16 kHz FLAC", progress):
        try:
            flac[clip.id] = convert_clip(clip, audio_dir)
        except (RuntimeError, ValueError, OSError) as e:  # soundfile raises LibsndfileError (a RuntimeError)
            reports[split_of(clip.group)].skip("unreadable_audio", clip.id, f"{clip.origin}: {e}")
    labels = read_labels(sorted(flac.items()), out_dir / LABEL_SUBDIR, recognizers=recognizers, progress=progress)
    whisper, sphinx, hama = labels.get("whisper", {}), labels.get("pocketsphinx", {}), labels.get("hama", {})

    utts: dict[str, list[Utterance]] = {s: [] for s in SPLITS}
    for clip in clips:
        if clip.id not in flac:
            continue
        split = split_of(clip.group)
        report = reports[split]
        report.read[f"clips of {clip.package}"] += 1
        w, s, h = whisper.get(clip.id), sphinx.get(clip.id), hama.get(clip.id)
        decision = choose_reference(clip, w, s, hama=h, gate=gate)
        if decision.text is None:
            report.skip(decision.kind, clip.id, f"{clip.origin}: {decision.detail}")
            continue
        if split != "train" and not decision.reliable:
            why = {"whisper": "only a Whisper pseudo-label"}.get(
                decision.kind, f"{decision.kind}, phones only" if decision.kind.endswith("+hama")
                else f"{decision.kind} on a short text")
            report.skip("unreliable_reference", clip.id, f"{clip.origin}: {why} ({decision.text!r})")
            continue
        if decision.kind == "metadata" and w is not None and (not w["normalized"] or w["no_speech_prob"] > 0.6):
            report.flag("whisper_hears_no_speech", clip.id, f"metadata {decision.text!r}, Whisper {w['text']!r}")
        path = flac[clip.id]
        utts[split].append(
            Utterance(
                id=clip.id,
                audio=path.relative_to(out_dir).as_posix(),
                duration=sf.info(str(path)).duration,
                text=decision.text,
                speaker=legacy_speaker.get(clip.id, clip.group),
                extra=_extra(clip, decision, w, s, h),
            )
        )
    for split in SPLITS:
        utts[split].sort(key=lambda u: u.id)
        reports[split].note(f"groups: {sorted({u.extra['group'] for u in utts[split]})}")
    sets = RealSpeechSets(utts, reports, sources_report, clips={c.id: c for c in clips})
    sets.checks = rule_checks(clips, whisper, sphinx, gate=gate)
    sets.checks["hama_rule"] = hama_rule_check(clips, whisper, hama)
    return sets


def _progress(items: list, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="clip", disable=not enabled)


def _extra(clip: SourceClip, d: Decision, w: dict | None, s: dict | None, h: dict | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "package": clip.package,
        "licence": PACKAGES[clip.package].licence,
        "group": clip.group,
        "origin": clip.origin,
        "reference_kind": d.kind,
    }
    if clip.reference_source:
        extra["reference_source"] = clip.reference_source
    if clip.hint:
        extra["hint"] = clip.hint
    if w is not None:
        extra["whisper"] = {k: w[k] for k in ("text", "avg_logprob", "no_speech_prob", "compression_ratio")}
    if s is not None:
        extra["pocketsphinx"] = s["text"]
    if h is not None and d.kind.endswith("+hama"):  # only where it chose the reference: other manifests unchanged
        extra["hama"] = h["phones"]
    return extra


def rule_checks(
    clips: Sequence[SourceClip],
    whisper: dict[str, dict],
    sphinx: dict[str, dict],
    *,
    gate: PseudoLabelGate = PSEUDO_LABEL_GATE,
) -> dict[str, Any]:
    """The labelling rules measured where the truth is known (clips with metadata references).

    - agreement precision: of the metadata clips where Whisper and pocketsphinx agree, the share whose agreed
      text is the metadata reference (the trust a ``whisper+pocketsphinx`` reference deserves);
    - gate precision: of the metadata clips whose Whisper reading passes the pseudo-label gate, the share equal
      to the metadata reference (the trust a ``whisper`` pseudo-label deserves), and the share passing;
    - confident-short precision: the same for readings confident enough but shorter than the gate's
      ``min_words`` (why short pseudo-labels are refused).
    """
    n = agreed = agreed_right = gated = gated_right = whisper_right = short = short_right = 0
    agreed_short = agreed_short_right = 0
    by_package: dict[str, Counter] = defaultdict(Counter)
    for clip in clips:
        if clip.reference is None or clip.id not in whisper:
            continue
        ref = normalize_text(clip.reference)
        w = whisper[clip.id]
        s = sphinx.get(clip.id, {"normalized": ""})
        n += 1
        right = agree(w["normalized"], ref)
        whisper_right += right
        c = by_package[clip.package]
        c["clips"] += 1
        c["whisper_right"] += right
        if agree(w["normalized"], s["normalized"]):
            agreed += 1
            agreed_right += right
            c["agreed"] += 1
            c["agreed_right"] += right
            if len(w["normalized"].split()) < MIN_AGREED_WORDS:
                agreed_short += 1
                agreed_short_right += right
        if gate.passes(w):
            gated += 1
            gated_right += right
            c["gated"] += 1
            c["gated_right"] += right
        elif gate.confident(w):  # confident, but too short for the gate
            short += 1
            short_right += right
    return {
        "metadata_clips": n,
        "whisper_exact": _share(whisper_right, n),
        "agreement_rate": _share(agreed, n),
        "agreement_precision": _share(agreed_right, agreed),
        "agreed": agreed,
        "agreed_short": agreed_short,
        "agreed_short_precision": _share(agreed_short_right, agreed_short),
        "agreed_longer": agreed - agreed_short,
        "agreed_longer_precision": _share(agreed_right - agreed_short_right, agreed - agreed_short),
        "gate": asdict(gate),
        "gate_pass_rate": _share(gated, n),
        "gate_precision": _share(gated_right, gated),
        "gated": gated,
        "confident_short": short,
        "confident_short_precision": _share(short_right, short),
        "by_package": {k: dict(v) for k, v in sorted(by_package.items())},
    }


def hama_rule_check(clips: Sequence[SourceClip], whisper: dict[str, dict], hama: dict[str, dict]) -> dict[str, Any]:
    """Rule 5 (``whisper+hama``) measured on the metadata-labelled clips: how many Whisper texts hama confirms
    (phone error within HAMA_MAX_PER), how many of those are not the metadata's words (homophones, near misses),
    and the phone error of the confirmed texts against the metadata's phones: the label noise a phone model gets."""
    from asr.scoring import ErrorCounts, score_utterance
    from asr.text.phones import PhoneTokenizer

    tokenizer = PhoneTokenizer()
    n = accepted = differing = 0
    counts = ErrorCounts(0, 0, 0, 0)
    for clip in clips:
        if clip.reference is None or clip.id not in whisper or clip.id not in hama:
            continue
        ref, text = normalize_text(clip.reference), whisper[clip.id]["normalized"]
        if tokenizer.oov(ref):
            continue
        n += 1
        per = phone_agreement(text, hama[clip.id]["phones"])
        if per is None or per > HAMA_MAX_PER:
            continue
        accepted += 1
        differing += not agree(text, ref)
        counts = counts + score_utterance("", tokenizer.phones(ref), tokenizer.phones(text)).counts
    return {
        "metadata_clips": n,
        "max_per": HAMA_MAX_PER,
        "accepted": accepted,
        "accepted_not_metadata_words": differing,
        "accepted_phone_error": round(counts.rate, 4) if accepted else None,
    }


def _hama_rule_lines(h: dict[str, Any] | None) -> list[str]:
    if not h:
        return []
    return [
        f"Rule 5 (hama confirms a text's phones, error <= {h['max_per']}; training only): of {h['metadata_clips']}"
        f" metadata-labelled clips CMUdict can spell, hama confirms Whisper's text on {h['accepted']}, of which"
        f" {h['accepted_not_metadata_words']} are not the metadata's words (homophones such as SEE for C, near"
        f" misses); the confirmed texts' phones are {_pct(h['accepted_phone_error'])} off the metadata's phones.",
        "",
    ]


def _share(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


# ---------------------------------------------------------------------------------------------- the README


def format_readme(
    sets: RealSpeechSets, utterances: dict[str, list[Utterance]], *, legacy: Sequence[Utterance], command: str
) -> str:
    """``README.md`` of the output folder: what each split holds, where it comes from, how it was labelled.

    ``utterances``: what was written per split (after the manifest checks), normally ``sets.utterances``.
    """
    reports, sources_report, checks = sets.reports, sets.sources_report, sets.checks
    lines = [
        "# Real recorded English speech (made by `asr prepare realspeech`)",
        "",
        f"Command: `{command}`. Rules: `asr/data/realspeech_splits.py`, `realspeech_labels.py`,"
        " `realspeech_sources.py` (module docstrings). Generated file: do not edit.",
        "",
        "- `realspeech.jsonl`: the legacy 20-recording set, unchanged (pocketsphinx-testdata + alsa-utils);"
        f" {len(legacy)} utterances, {sum(u.duration for u in legacy) / 60:.2f} min. The same clips are in"
        " `realspeech-test.jsonl` (16 kHz FLAC copies, same ids and words).",
        "- `realspeech-{train,dev,test}.jsonl`: split by speaker group (no group in two splits). dev and test hold"
        " only reliable references (metadata, or two independent sources agreeing); train adds Whisper tiny.en"
        " pseudo-labels that pass the gate. dev is for model selection and LM weights; test only for reported"
        " figures.",
        "",
        "## Splits",
        "",
        "| split | utterances | minutes | groups | reference kinds (utterances) |",
        "|---|---:|---:|---:|---|",
    ]
    for split in SPLITS:
        us = utterances.get(split, [])
        kinds = Counter(u.extra.get("reference_kind", "?") for u in us)
        lines.append(
            f"| {split} | {len(us)} | {sum(u.duration for u in us) / 60:.2f} | "
            f"{len({u.extra.get('group') for u in us})} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
            + " |"
        )
    lines += [
        "",
        "Minutes include the silence around short clips (a spoken letter is often 2 s of audio).",
        "",
        "## Groups",
        "",
        "| group | package | licence | split | kept | minutes | reference kinds | skipped (reason: count) |",
        "|---|---|---|---|---:|---:|---|---|",
    ]
    kept: dict[str, list[Utterance]] = defaultdict(list)
    for split in SPLITS:
        for u in utterances.get(split, []):
            kept[u.extra["group"]].append(u)
    skipped: dict[str, Counter] = defaultdict(Counter)
    package_of = {c.group: c.package for c in sets.clips.values()}
    for split in SPLITS:
        for issue in reports[split].skipped:
            clip = sets.clips.get(issue.item)
            skipped[clip.group if clip else "?"][issue.reason] += 1
    for group in sorted(set(kept) | set(skipped)):
        us = kept.get(group, [])
        kinds = Counter(u.extra["reference_kind"] for u in us)
        package = package_of.get(group, "?")
        licence = PACKAGES[package].licence if package in PACKAGES else "?"
        lines.append(
            f"| {group} | {package} | {licence} | {split_of(group)} | {len(us)} | "
            f"{sum(u.duration for u in us) / 60:.2f} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
            + " | "
            + ", ".join(f"{k}: {v}" for k, v in sorted(skipped.get(group, Counter()).items()))
            + " |"
        )
    src = Counter(i.reason for i in sources_report.skipped)
    lines += [
        "",
        "## Passed over while reading the packages",
        "",
        "Recordings that are not English speech or are copies, by reason (details in `summary.json`, entry"
        " `realspeech-sources`): " + (", ".join(f"{k} {v}" for k, v in sorted(src.items())) or "none") + ".",
        "",
        *[f"- {n}" for n in sources_report.notes],
        "",
        "## The labelling rules, measured on the clips whose words the packages give",
        "",
        f"On {checks.get('metadata_clips')} metadata-labelled clips: Whisper tiny.en gives exactly the metadata"
        f" words on {_pct(checks.get('whisper_exact'))}; Whisper and pocketsphinx agree on"
        f" {_pct(checks.get('agreement_rate'))} ({checks.get('agreed')} clips), and when they agree the text is"
        f" the metadata's on {_pct(checks.get('agreement_precision'))}: on texts of fewer than {MIN_AGREED_WORDS}"
        f" words {_pct(checks.get('agreed_short_precision'))} ({checks.get('agreed_short')} clips; homophones,"
        " letter names and shared confusions: such agreements are training-only), on longer texts"
        f" {_pct(checks.get('agreed_longer_precision'))} ({checks.get('agreed_longer')} clips). The pseudo-label gate"
        f" ({checks.get('gate')}) passes {_pct(checks.get('gate_pass_rate'))} of them ({checks.get('gated')}"
        f" clips) and is right on {_pct(checks.get('gate_precision'))} (the trust a training-only `whisper`"
        f" label deserves). Readings as confident but shorter than the gate's {checks['gate']['min_words']} words"
        f" ({checks.get('confident_short')} clips, mostly single words) are right on"
        f" {_pct(checks.get('confident_short_precision'))} only: why they are refused.",
        "",
        *_hama_rule_lines(checks.get("hama_rule")),
        "| package | metadata clips | Whisper exact | agreed | agreed and right | gated | gated and right |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for package, c in checks.get("by_package", {}).items():
        lines.append(
            f"| {package} | {c.get('clips', 0)} | {c.get('whisper_right', 0)} | {c.get('agreed', 0)} | "
            f"{c.get('agreed_right', 0)} | {c.get('gated', 0)} | {c.get('gated_right', 0)} |"
        )
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"

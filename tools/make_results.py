#!/usr/bin/env python
"""Write docs/results.md from the campaign's measured outputs (issues 12 and 13). Every figure comes from a file a
tool wrote; a part whose file is missing is printed as missing, with the command that makes it.

    .venv/bin/python tools/make_results.py

Parts and their sources:

1. The bundled model: asr/assets/model/figures.json (tools/make_bundle.py --steps package).
2. The learning curve: docs/learning_curve.csv, committed, since run folders do not outlive the machine
   (tools/make_bundle.py --steps curve = tools/learning_curve.py --history docs/learning_curve.csv), plotted
   to docs/figures/results_learning_curve.png; what limits the model: runs/fit/*/fit.json (tools/fit_diagnosis.py).
3. Decoders side by side: runs/decoders/compare.json (tools/compare_decoders.py on the synthetic test set and
   realspeech-test with the bundled model), and what pruning the LM costs: runs/lm-prune/prune_cost.json
   (tools/lm_prune_cost.py).
4. Real speech to measure on, and the peers: data/realspeech/summary.json (asr prepare realspeech),
   runs/realspeech/peer_{pocketsphinx,whisper}/*.json and runs/peers_synth/peer_{pocketsphinx,whisper}/*.json.
5. The training data: the voice scores (runs/score_voices/synth_clean/voice_scores.json, tools/score_voices.py),
   the augmentation costs (runs/augment/bench_augment/bench_augment_cost.json) and fp32 vs bf16 training
   throughput (runs/augment/bench_train/bench_train_throughput.json).

The first bundled model's results (the accuracy study at a near-100% WER budget, the 30-minute stream): docs/
results-history.md (tools/make_results_history.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from learning_curve import read_history  # a sibling tool: this file's folder is first on sys.path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = Path("docs/figures")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _load(path: str | Path) -> dict | None:
    p = Path(path)
    return json.loads(p.read_text()) if p.is_file() else None


def _scores(s: dict) -> str:
    """WER / CER in %, or the phone error rate of a phone model's greedy output (its summary has ``per``)."""
    return f"PER {_pct(s['per'])}" if "per" in s else f"{_pct(s['wer'])} / {_pct(s['cer'])}"


def _missing(path: str, command: str) -> str:
    return f"*Not measured yet: `{path}` is missing (made by `{command}`).*"


# ------------------------------------------------------------------------------------------------- sections

BUNDLE_SETS = [
    ("synth_test", "synthetic test (held-out voices and sentences)"),
    ("realspeech_test", "realspeech-test (game voices, codec2 Harvard sentences, legacy 20)"),
    ("legacy_real", "legacy real set (20 recordings: pocketsphinx-testdata, alsa-utils)"),
    ("bundled_synth", "bundled synthetic clips (`asr/assets/audio/synth_test.jsonl`)"),
    ("bundled_real", "bundled real clips (`asr/assets/audio/real.jsonl`)"),
]


def section_bundle() -> str:
    figures = _load("asr/assets/model/figures.json")
    if not figures or "realspeech_dev_greedy" not in figures:
        return (
            "The bundle is still the project's first model (its figures: `docs/results-history.md`): no phase-2 "
            "checkpoint of the campaign has beaten it on realspeech-dev (greedy WER) yet "
            "(`tools/make_bundle.py --steps select`). "
            + _missing("asr/assets/model/figures.json (campaign keys)", "tools/make_bundle.py --steps package")
        )
    lines = [
        "| set | utts | decoder | full WER / CER | stream WER / CER | stream real-time factor (1 thread) |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in BUNDLE_SETS:
        for decoder, name in (("greedy", "greedy"), ("lm", "lexicon + LM")):
            full, stream = figures.get(f"{key}_{decoder}_full"), figures.get(f"{key}_{decoder}_stream")
            if not full or not stream:
                continue
            name = "greedy (phones)" if "per" in full else name
            lines.append(
                f"| {label} | {full['utterances']} | {name} | {_scores(full)} | {_scores(stream)} | "
                f"{stream['real_time_factor']:.4f} |"
            )
    dev, dev_lm = figures["realspeech_dev_greedy"], figures.get("realspeech_dev_lm")
    chosen = (f"lexicon + LM (the default decoder, what selection compares): WER {_pct(dev_lm['wer'])}, CER "
              f"{_pct(dev_lm['cer'])}; " if dev_lm else "")  # fmt: skip
    greedy = f"PER {_pct(dev['per'])}" if "per" in dev else f"WER {_pct(dev['wer'])}, CER {_pct(dev['cer'])}"
    lines += ["", f"Model selection: realspeech-dev ({dev['utterances']} utterances), {chosen}greedy: {greedy}."]
    return "\n".join(lines)


CURVE = Path("docs/learning_curve.csv")
CURVE_NOTES = """\
The rows live in `docs/learning_curve.csv` (committed: run folders do not outlive the machine, and the world1 and
world2 folders did not); `tools/make_bundle.py --steps curve` scores the epoch checkpoints on disk with
`tools/learning_curve.py` (greedy, whole sets, one thread) and adds them to it; `tools/make_results.py` draws this
table and the figure from it. world3 is phase 3 (`recipes/synth/world_long.yaml`), warm-started from the committed
bundle (world2 epoch 2), on a fresh machine with a newer CPU (AVX512-BF16: the trainer ran bf16 autocast,
`precision: auto`; an epoch took ~14 min of wall time against ~42 min for phase 2). Its CPU-hours continue from
world2 epoch 2's. realspeech-dev was rebuilt on that machine: 327 utterances, where the world1 and world2 rows had
325; world2 epoch 2 (the bundle then) scores 137.6 / 62.1 on the new set against 137.5 / 62.0 on the old one. Phase 3's
schedule ended in session 22 (epochs 6-10, 7.0 CPU-h in all): synth-dev kept falling (greedy CER 31.3 at epoch 5
to 28.8 at epoch 10) while realspeech-dev stayed where epoch 5 left it (greedy CER 54.8, then 55.6-57.1; with the
LM 54.1-57.6): more of the same synthetic training no longer reaches real speech. Averaging epochs 5-7 did not
help it either (LM: CER 55.7, WER 105.2)."""


def section_curve() -> str:
    curve = None
    if CURVE.is_file():
        sets, rows = read_history(CURVE)
        curve = {"sets": sets, "rows": rows}
    if not curve or not curve["rows"]:
        return _missing(str(CURVE), "tools/make_bundle.py --steps curve")
    sets = list(curve["sets"])
    head = "| run | epoch | step | trainer CPU-hours | " + " | ".join(f"{s} WER / CER" for s in sets) + " |"
    lines = [head, "|" + "---|" * (4 + len(sets))]
    for r in curve["rows"]:
        cells = " | ".join(f"{_pct(r.get(f'{s}_wer'))} / {_pct(r.get(f'{s}_cer'))}" for s in sets)
        lines.append(f"| {r['run']} | {r['epoch']} | {r['step']} | {r['cpu_hours']:.2f} | {cells} |")
    _plot_curve(curve)
    return "\n".join(lines) + "\n\n" + CURVE_NOTES + "\n\n![learning curve](figures/results_learning_curve.png)"


PHONE_CURVE = Path("docs/learning_curve_phones.csv")
STUDY = Path("docs/study.json")


def section_phone_curve() -> str:
    """The phone phase's curve: greedy PER per set, and the ``+lm`` sets in words (lexicon + LM, fixed weights)."""
    if not PHONE_CURVE.is_file():
        return _missing(str(PHONE_CURVE), "tools/make_bundle.py --steps curve")
    sets, rows = read_history(PHONE_CURVE)
    if not rows:
        return _missing(str(PHONE_CURVE), "tools/make_bundle.py --steps curve")
    per = {s for s in sets if all(r.get(f"{s}_cer") is None for r in rows)}
    names = [f"{s} PER (greedy)" if s in per else f"{s.removesuffix('+lm')} WER / CER (lexicon + LM)" for s in sets]
    lines = ["| run | epoch | step | trainer CPU-hours | " + " | ".join(names) + " |", "|" + "---|" * (4 + len(sets))]
    for r in rows:
        cells = " | ".join(
            _pct(r.get(f"{s}_wer")) if s in per else f"{_pct(r.get(f'{s}_wer'))} / {_pct(r.get(f'{s}_cer'))}"
            for s in sets
        )
        lines.append(f"| {r['run']} | {r['epoch']} | {r['step']} | {r['cpu_hours']:.2f} | {cells} |")
    return "\n".join(lines)


#: The accuracy study's rows, in the order of the paper's question (issue 13, section 6); the causal ones (no "bidir")
#: must all reach STUDY_BAR on the synthetic test set for the comparison to be about models that work.
STUDY_ROWS = ["linear", "improved", "softmax", "bidir_linear", "bidir_softmax"]
STUDY_BAR = 0.30


def section_study() -> str:
    """The accuracy study from its committed record (tools/attention_study.py --record): one row per variant."""
    study = _load(STUDY)
    if not study:
        return _missing(
            str(STUDY), "tools/attention_study.py --recipe recipes/synth/study.yaml --record docs/study.json"
        )
    lines = [
        "| row | params | epochs (steps) | trainer CPU-h | test PER, greedy | test WER / CER, lexicon + LM | "
        "streamed WER | stream = full | realspeech-dev WER / CER |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in [*STUDY_ROWS, *sorted(set(study) - set(STUDY_ROWS))]:
        rec = study.get(name)
        if rec is None:
            lines.append(f"| {name} | not trained yet | | | | | | | |")
            continue
        ev = rec["evals"]
        full, stream, real = ev.get("test-full") or {}, ev.get("test-stream"), ev.get("real-full") or {}
        same = rec.get("stream_equals_full")
        hours = "-" if rec.get("cpu_seconds") is None else f"{rec['cpu_seconds'] / 3600:.2f}"
        lines.append(
            f"| **{name}**: {rec['description']} | {rec['params'] / 1e6:.2f} M | {rec['epochs']} ({rec['steps']}) | "
            f"{hours} | {_pct((ev.get('test-greedy-full') or {}).get('per'))} | "
            f"{_pct(full.get('wer'))} / {_pct(full.get('cer'))} | "
            f"{_pct(stream['wer']) if stream else 'offline only'} | {f'{same[0]} / {same[1]}' if same else '-'} | "
            f"{_pct(real.get('wer'))} / {_pct(real.get('cer'))} |"
        )
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {v}" for v in study_verdict(study))


def study_verdict(study: dict) -> list[str]:
    """What the recorded rows say: the bar for the causal rows, and each linear row against softmax."""

    def wer(name: str) -> float | None:
        return ((study.get(name) or {}).get("evals", {}).get("test-full") or {}).get("wer")

    def per(name: str) -> float | None:
        return ((study.get(name) or {}).get("evals", {}).get("test-greedy-full") or {}).get("per")

    causal = [n for n in STUDY_ROWS if not n.startswith("bidir")]
    missing = [n for n in causal if wer(n) is None]
    above = [f"{n} ({_pct(wer(n))})" for n in causal if wer(n) is not None and wer(n) > STUDY_BAR]
    bar = f"synthetic test WER <= {100 * STUDY_BAR:.0f}% for every causal row"
    if above:
        out = [f"The bar ({bar}) is not met: {', '.join(above)}."]
    elif missing:
        out = [f"The bar ({bar}) is met by every causal row trained so far; not trained yet: {', '.join(missing)}."]
    else:
        out = [f"The bar ({bar}) is met."]
    for a, b in (("linear", "softmax"), ("improved", "softmax"), ("bidir_linear", "bidir_softmax")):
        if wer(a) is not None and wer(b) is not None:
            rel = [
                f"{name} {100 * (x / y - 1):+.1f}%"
                for name, x, y in (("WER", wer(a), wer(b)), ("PER", per(a), per(b)))
                if x and y
            ]
            found = (study[a].get("against") or {}) if (study[a].get("against") or {}).get("row") == b else {}
            boot = [
                f"{label} {100 * r['difference']:+.2f} points (95% interval {100 * r['low']:+.2f} to "
                f"{100 * r['high']:+.2f}; {a} better on {r['b_better']} utterances, worse on {r['b_worse']})"
                for label, r in (("WER", found.get("test-full")), ("PER", found.get("test-greedy-full")))
                if r
            ]
            out.append(
                f"{a} against {b}, relative, synthetic test: {', '.join(rel)}."
                + (f" Paired bootstrap ({a} - {b}, 2,000 resamples): {'; '.join(boot)}." if boot else "")
            )
    return out


def _plot_curve(curve: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    hours = [r["cpu_hours"] for r in curve["rows"]]
    for ax, metric in zip(axes, ("wer", "cer")):
        for s in curve["sets"]:
            key = f"{s}_{metric}"
            points = [(h, 100 * r[key]) for h, r in zip(hours, curve["rows"]) if r[key] is not None]
            ax.plot([h for h, _ in points], [v for _, v in points], marker="o", label=s)
        ax.set_xlabel("trainer CPU-hours")
        ax.set_ylabel(f"{metric.upper()} % (greedy)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / "results_learning_curve.png", dpi=110)
    plt.close(fig)


def section_fit() -> str:
    reports = sorted(Path("runs/fit").glob("*/fit.json"), key=lambda p: p.stat().st_mtime)
    if not reports:
        return _missing("runs/fit/<name>/fit.json", "tools/fit_diagnosis.py --model M --run RUN --out runs/fit/<name>")
    lines = [
        "| model | set | clean loss / token | clean CER (PER) | world loss / token | world CER (PER) |",
        "|---|---|---|---|---|---|",
    ]
    for path in reports:
        r = json.loads(path.read_text())
        for name, cells in r["sets"].items():
            c, w = cells["clean"], cells["world"]
            unit = "PER " if c.get("unit") == "phone" else ""  # a phone model's rates are phone error rates
            lines.append(
                f"| `{r['model']}` | {name} ({c['utterances']}) | {c['loss_per_token']:.3f} | {unit}{_pct(c['cer'])} | "
                f"{w['loss_per_token']:.3f} | {unit}{_pct(w['cer'])} |"
            )
    return "\n".join(lines)


def section_decoders() -> str:
    d = _load("runs/decoders/compare.json")
    if not d:
        return _missing(
            "runs/decoders/compare.json",
            "tools/compare_decoders.py --out runs/decoders/compare.json --set synth_test=data/synth_clean/test "
            "--set realspeech_test=data/realspeech/realspeech-test.jsonl",
        )
    s = d["lm_settings"]
    lines = [
        f"Model `{d['model']}`, LM `{d['lm']}` (lm_weight {s['lm_weight']}, word_score {s['word_score']}, beam "
        f"{s['beam_size']}; lexicon without LM: word_score {d['lexicon_only_word_score']}), {d['chunk_ms']:.0f} ms "
        f"chunks, {d['threads']} thread. Partial latency: ms of audio after a word's end until the partial first "
        "shows it in its final place / until it stops changing (median, p90).",
        "",
        "| set | decoder | full WER / CER | stream WER / CER | stream = full | stream RTF | first seen | stable |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in d["rows"]:
        first, stable = r["partial_first_seen"], r["partial_stable"]
        lines.append(
            f"| {r['set']} ({r['utterances']}) | {r['decoder']} | {_pct(r['full_wer'])} / {_pct(r['full_cer'])} | "
            f"{_pct(r['stream_wer'])} / {_pct(r['stream_cer'])} | {r['stream_equals_full']} / {r['utterances']} | "
            f"{r['stream_rtf']:.4f} | {first['median_ms']:.0f} ({first['p90_ms']:.0f}) | "
            f"{stable['median_ms']:.0f} ({stable['p90_ms']:.0f}) |"
        )
    by = {(r["set"], r["decoder"]): r for r in d["rows"]}
    notes = []
    for name in sorted({r["set"] for r in d["rows"]}):
        g, lm = by.get((name, "greedy")), by.get((name, "lexicon + LM"))
        if g and lm and g["full_wer"] > 0:
            notes.append(f"{name}: lexicon + LM WER {_pct(lm['full_wer'])} vs greedy {_pct(g['full_wer'])} "
                         f"({100 * (lm['full_wer'] / g['full_wer'] - 1):+.1f}% relative; target -25%)")  # fmt: skip
    if d.get("load_average"):
        notes.append(f"load average at the start {d['load_average']} on {os.cpu_count()} cores (other jobs ran "
                     "beside it: the real-time factors are upper bounds)")  # fmt: skip
    return "\n".join(lines) + ("\n\n" + "; ".join(notes) + "." if notes else "") + "\n\n" + _prune_cost()


def _prune_cost() -> str:
    d = _load("runs/lm-prune/prune_cost.json")
    if not d:
        return _missing("runs/lm-prune/prune_cost.json", "tools/lm_prune_cost.py --out runs/lm-prune")
    sets = list(d["sets"])
    lines = [
        f"What pruning the LM costs (`tools/lm_prune_cost.py`): the bundled LM's text and vocabulary at each "
        f"relative-entropy threshold, decoded with the bundled model at the bundled LM's tuned weights (lm_weight "
        f"{d['lm_weight']}, word_score {d['word_score']}), full utterances, dev sets (first "
        f"{d['rows'][0][sets[0]]['utterances']} utterances of each).",
        "",
        "| prune threshold | n-grams (1/2/3) | LM + lexicon, gzipped MiB | "
        + " | ".join(f"{s} WER / CER" for s in sets)
        + " |",
        "|" + "---|" * (3 + len(sets)),
    ]
    for r in d["rows"]:
        label = "none" if r["prune"] == 0 else f"{r['prune']:g}"
        cells = " | ".join(f"{_pct(r[s]['wer'])} / {_pct(r[s]['cer'])}" for s in sets)
        counts = " / ".join(f"{c:,}" for c in r["ngram_counts"])
        lines.append(f"| {label} | {counts} | {r['size_mib']:.2f} | {cells} |")
    return "\n".join(lines)


def section_realspeech() -> str:
    summary = _load("data/realspeech/summary.json")
    lines = []
    if summary is None:
        lines.append(_missing("data/realspeech/summary.json", "asr prepare realspeech --out data/realspeech"))
    peers = {
        "pocketsphinx": [_load("runs/realspeech/peer_pocketsphinx/peer_pocketsphinx.json"),
                         _load("runs/peers_synth/peer_pocketsphinx/peer_pocketsphinx.json")],
        "Whisper tiny.en": [_load("runs/realspeech/peer_whisper/peer_whisper.json"),
                            _load("runs/peers_synth/peer_whisper/peer_whisper.json")],
    }  # fmt: skip
    lines += [
        "| peer | set | utts | minutes | WER / CER | WER / CER on references made without this peer (utts) | RTF |",
        "|---|---|---|---|---|---|---|",
    ]
    for peer, files in peers.items():
        for d in files:
            if not d:
                continue
            for name, r in d["sets"].items():
                indep = (f"{_pct(r['wer_independent'])} / {_pct(r['cer_independent'])} ({r['n_independent']})"
                         if r.get("n_independent") is not None else "-")  # fmt: skip
                lines.append(
                    f"| {peer} | {name} | {r['n_utts']} | {r['audio_seconds'] / 60:.1f} | {_pct(r['wer'])} / "
                    f"{_pct(r['cer'])} | {indep} | {r['rtf']:.3f} |"
                )
    return "\n".join(lines)


def section_data() -> str:
    out = []
    scores = _load("runs/score_voices/synth_clean/voice_scores.json")
    if scores:
        by_engine: dict[str, list] = {}
        for s in scores["settings"]:
            by_engine.setdefault(s["engine"], []).append(s)
        out += [
            f"Voice settings scored by Whisper tiny.en ({scores['k']} utterances each; dropped when WER > "
            f"{scores['max_wer']}): `{scores['command']}`.",
            "",
            "| engine | settings | dropped | mean WER of the settings | train hours kept |",
            "|---|---|---|---|---|",
        ]
        for engine, rows in sorted(by_engine.items()):
            dropped = sum(not r["kept"] for r in rows)
            kept_h = sum(r["train_hours"] for r in rows if r["kept"])
            mean = sum(r["wer"] for r in rows) / len(rows)
            out.append(f"| {engine} | {len(rows)} | {dropped} | {mean:.3f} | {kept_h:.2f} |")
        n_all, n_dropped = len(scores["settings"]), len(scores["dropped"])
        out.append(f"| all | {n_all} | {n_dropped} | | {scores['train_hours_kept']:.2f} |")
    else:
        out.append(_missing("runs/score_voices/synth_clean/voice_scores.json", "tools/make_bundle.py --steps corpus"))
    cost = _load("runs/augment/bench_augment/bench_augment_cost.json")
    out.append("")
    if cost:
        out.append(f"Augmentation cost per utterance (`tools/bench_augment_cost.py`): {_augment_costs(cost)}.")
    throughput = _load("runs/augment/bench_train/bench_train_throughput.json")
    if throughput:
        out += [
            "",
            "Training throughput, fp32 vs bf16, same model and batches, one run (`tools/bench_train_throughput.py`; "
            f"CPU bf16: {throughput['cpu_bf16']['found']}; load average "
            f"{throughput['machine']['load_average_1m']:.1f} at the start):",
            "",
            "| precision | steps | audio s per CPU s | audio s per wall s | loss at the last step |",
            "|---|---|---|---|---|",
        ]
        for name, v in throughput["variants"].items():
            if not name.startswith("precision"):
                continue
            out.append(f"| {v['precision']} | {v['steps']} | {v['audio_s_per_cpu_s']:.1f} | "
                       f"{v['audio_s_per_wall_s']:.1f} | {v['losses'][-1]:.3f} |")  # fmt: skip
    return "\n".join(out)


def _augment_costs(cost: dict) -> str:
    """``{"seconds": 4.0, "ms": {stage: median ms}}`` as a sentence."""
    items = ", ".join(f"{stage} {ms:.1f} ms" for stage, ms in cost["ms"].items())
    return f"{items} (median of {cost['repeats']} on a {cost['seconds']:.0f} s utterance, one thread)"


def render(parts: dict[str, str]) -> str:
    return f"""# Results

Measured on {parts["machine"]} (CPU only; no GPU was lent to this work); written by `tools/make_results.py` from
the files each tool wrote. WER and CER in %, the project's one text normalisation and jiwer; "stream" = 160 ms chunks
through the streaming recognizer (the path `asr live` and `asr serve` use). The first bundled model, the accuracy
study at its budget and the 30-minute stream are in `docs/results-history.md`.

## 1. The bundled model

`asr/assets/model/` (model card `asr/assets/model/README.md`), made by `tools/make_bundle.py` (issue 13's campaign):
phase 1 `recipes/synth/world.yaml`, phase 2 `recipes/synth/world_ft.yaml` (warm start), chosen on realspeech-dev.

{parts["bundle"]}

## 2. The learning curve

Every epoch checkpoint of the campaign's runs, greedy decoding, against the trainer's CPU-hours (trainer process,
all threads; the loader worker is not counted). realspeech-dev is the model-selection set; synth-dev is the synthetic
dev split (held-out voices and sentences).

{parts["curve"]}

What limits the model (`tools/fit_diagnosis.py`): CTC loss per character (nats) and greedy CER on a seeded sample of
each set, on the audio as it is (clean) and as the recipe's augmentation makes it (world: rooms, noise, codecs,
speed, VTLP; no SpecAugment). Train close to dev means the model underfits (it needs steps or capacity, not data);
world above clean is what the augmentation asks; real above synthetic is the domain gap.

{parts["fit"]}

The phone phase (`recipes/synth/targets_phone.yaml` from scratch, then `recipes/synth/phones_world.yaml`, phase 2's
data with CMUdict phone targets): greedy phone error rates, and realspeech-dev in words through the lexicon + LM at
fixed weights (LM weight 1, word score -2), every epoch checkpoint against the trainer's CPU-hours
(`docs/learning_curve_phones.csv`, written by `tools/make_bundle.py --steps curve`).

{parts["phone_curve"]}

## 3. Decoders: greedy, prefix beam, lexicon, lexicon + LM (issue 12)

{parts["decoders"]}

## 4. Real speech to measure on, and two peers (issue 13, section 1)

`asr prepare realspeech` (`data/realspeech/README.md` has the per-source table): realspeech-train (pseudo-labels
allowed), realspeech-dev (model selection, LM weights) and realspeech-test (figures only), split by speaker/package;
dev/test references from package metadata or two systems agreeing. The peers use the same normalisation and scorer.
Where a peer helped make a set's references its plain figure is circular: the next column leaves those out.

{parts["realspeech"]}

## 5. The training data (issue 13, sections 2-3)

{parts["data"]}

## 6. The paper's question on models that work (issue 13, section 6)

The first accuracy study (`docs/results-history.md`, section 2) compared the attention forms at a budget where every
row's WER was near 100%, so it could not rank them. This one trains each row until it reads the synthetic test set,
and only the attention differs between rows: `recipes/synth/study.yaml` (the bundle's size: 6 blocks of 192, 4 heads,
causal conv module; from scratch on the clean synthetic corpus, 14.4 h in 21,772 utterances of the voices Whisper
reads; CMUdict phone targets; speed perturbation and SpecAugment only; 4 epochs), each row's overrides from
`tools/attention_study.py`, one CPU thread per row, two rows side by side (fp32: this CPU has no bf16 units).
Test: `data/synth_clean/test` (785 utterances, 30.6 min, held-out voices and sentences) in words through the bundled
lexicon + LM with the bundle's decoder settings, the same for every row (the LM's text holds no test sentence), and
greedy PER, the attention's effect before any LM; realspeech-dev in words for reference (no row hears real speech).
The rows are recorded in `docs/study.json` as they finish (two a session on this machine), and this table is
`tools/make_results.py`'s `section_study()` of that file:

    .venv/bin/python tools/attention_study.py --recipe recipes/synth/study.yaml --out runs/study_v3 --parallel \\
        --variants linear softmax --test data/synth_clean/test --real data/realspeech/realspeech-dev.jsonl \\
        --lm asr/assets/model --record docs/study.json

{parts["study"]}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--doc", type=Path, default=Path("docs/results.md"))
    args = ap.parse_args()
    os.chdir(ROOT)
    parts = {"machine": f"{os.cpu_count()}-core AMD EPYC VM, {time.strftime('%Y-%m-%d')}"}
    parts["bundle"] = section_bundle()
    parts["curve"] = section_curve()
    parts["phone_curve"] = section_phone_curve()
    parts["fit"] = section_fit()
    parts["decoders"] = section_decoders()
    parts["realspeech"] = section_realspeech()
    parts["data"] = section_data()
    parts["study"] = section_study()
    text = render(parts)
    args.doc.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

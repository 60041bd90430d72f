#!/usr/bin/env python
"""What limits a model: its CTC loss and greedy CER on training and held-out audio, clean and as training hears it.

    python tools/fit_diagnosis.py --model runs/world2/checkpoints/epoch-004.safetensors --run runs/world2 \\
        --out runs/fit/world2-e4

The run's configuration (``RUN/config.yaml``) names the sets and the augmentation; the room impulse responses come
from the run's cache. Four sets, ``--utterances`` of each (seeded sample): ``synth-train`` (the run's ``data.train``),
``synth-dev`` (``data.dev``), and the first ``data.extra_train`` / ``data.extra_dev`` (real speech in the campaign's
recipes). Two conditions: ``clean`` (the audio as it is) and ``world`` (the recipe's waveform augmentation, speed
and VTLP, seeded per utterance; no SpecAugment, which only masks). Per cell: CTC loss per target token (nats) and
greedy CER (normalised text, jiwer).

How to read it: train-clean close to dev-clean means the model does not overfit (more steps or more capacity,
not more data, is what it needs); world well above clean measures what the augmentation asks of it; real well above
synthetic measures the domain gap. A phone model's cells are phone error rates (still under the key ``cer``, with
``unit: phone``). Utterances are decoded as training sees them: without the tail padding ``asr eval`` adds. Writes
``OUT/fit.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger("fit_diagnosis")


def _sets(config) -> dict[str, str]:
    sets = {"synth-train": config.data.train, "synth-dev": config.data.dev}
    if config.data.extra_train:
        sets["real-train"] = config.data.extra_train[0].manifest
    if config.data.extra_dev:
        sets["real-dev"] = config.data.extra_dev[0].manifest
    return sets


def _cell(bundle, data, indices, *, augment, augmenter, seed: int, batch: int) -> dict:
    """Summed CTC loss, target tokens and greedy errors over ``indices`` of ``data``: characters of the normalised
    text, or for a phone model phones (PER, the reference spelled as ``asr eval`` spells it)."""
    from asr.decoding import greedy_search
    from asr.evaluate import phone_reference
    from asr.scoring import score_corpus
    from asr.text.normalize import normalize_text

    model, tok = bundle.model, bundle.tokenizer
    phones = tok.kind == "phone"
    loss_sum, tokens, refs, hyps = 0.0, 0, [], []
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, len(indices), batch):
        part = indices[start : start + batch]
        b = data.make_batch(part, cmvn=bundle.cmvn, augment=augment, augmenter=augmenter, generator=gen)
        if b.empty:
            continue
        with torch.inference_mode():
            lp, n = model(b.feats, b.lengths)
            loss = torch.nn.functional.ctc_loss(
                lp.transpose(0, 1).float(), b.targets, n, b.target_lengths, blank=tok.blank_id, reduction="sum",
                zero_infinity=True,
            )
        loss_sum += float(loss)
        tokens += int(b.target_lengths.sum())
        by_id = {u.id: u for u in (data.utterances[i] for i in part)}
        for row, utt_id in enumerate(b.ids):
            hyp = tok.decode(greedy_search(lp[row, : int(n[row])].float()).tokens)
            text = by_id[utt_id].text
            refs.append(phone_reference(tok, text) if phones else normalize_text(text))
            hyps.append(hyp if phones else normalize_text(hyp))
    counts, _ = score_corpus([str(i) for i in range(len(refs))], refs, hyps, unit="word" if phones else "char")
    return {
        "utterances": len(refs),
        "loss_per_token": loss_sum / max(tokens, 1),
        "unit": "phone" if phones else "char",
        "cer": counts.errors / max(counts.ref_len, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model file (safetensors) to diagnose")
    parser.add_argument("--run", required=True, help="the run folder whose config.yaml and RIR cache to use")
    parser.add_argument("--out", required=True, help="output folder (fit.json)")
    parser.add_argument("--utterances", type=int, default=120, help="utterances per set (seeded sample)")
    parser.add_argument("--batch", type=int, default=16, help="utterances per forward pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    import yaml

    from asr.augment.chain import WaveAugmenter
    from asr.augment.rooms import load_or_build_rir_bank
    from asr.configs import apply_overrides
    from asr.data.sources import load_utterances
    from asr.pipeline import load_asr_model
    from asr.train.config import TrainConfig
    from asr.train.data import TrainingData

    run = Path(args.run)
    config = apply_overrides(TrainConfig(), yaml.safe_load((run / "config.yaml").read_text()))
    bundle = load_asr_model(args.model)
    bundle.model.eval()
    aug = dataclasses.replace(config.augment, spec_augment=False)
    bank = None
    if aug.room.prob > 0:
        bank = load_or_build_rir_bank(
            aug.room, cache_dir=run / "cache", seed=config.seed, sample_rate=config.features.sample_rate
        )
    augmenter = WaveAugmenter.from_config(aug, sample_rate=config.features.sample_rate, rir_bank=bank)
    results: dict[str, dict] = {}
    t0 = time.time()
    for name, source in _sets(config).items():
        utts = load_utterances(source)
        data = TrainingData(
            utts, bundle.tokenizer, features=bundle.features, subsampling=bundle.model.subsampling_factor,
            max_seconds=config.data.max_utterance_seconds, name=name, fastest_speed=aug.fastest_speed,
        )  # fmt: skip
        rng = np.random.default_rng(args.seed)
        indices = sorted(rng.permutation(len(data))[: args.utterances].tolist())
        results[name] = {
            "clean": _cell(bundle, data, indices, augment=None, augmenter=None, seed=args.seed, batch=args.batch),
            "world": _cell(bundle, data, indices, augment=aug, augmenter=augmenter, seed=args.seed, batch=args.batch),
        }
        logger.info("%s done (%.0f s)", name, time.time() - t0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"model": args.model, "run": args.run, "utterances_per_set": args.utterances, "sets": results}
    (out / "fit.json").write_text(json.dumps(report, indent=2) + "\n")
    rate = "PER" if bundle.tokenizer.kind == "phone" else "CER"
    lines = [f"{'set':<12} {'clean loss/tok':>15} {'clean ' + rate:>10} {'world loss/tok':>15} {'world ' + rate:>10}"]
    for name, r in results.items():
        c, w = r["clean"], r["world"]
        lines.append(
            f"{name:<12} {c['loss_per_token']:>15.3f} {100 * c['cer']:>10.1f} {w['loss_per_token']:>15.3f} "
            f"{100 * w['cer']:>10.1f}"
        )
    sys.stdout.write("\n".join(lines) + f"\n(wrote {out / 'fit.json'})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

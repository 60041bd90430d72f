#!/usr/bin/env python
"""Cost of each on-the-fly augmentation for one utterance: milliseconds per 4 s utterance, one thread.

Each stage of asr.augment runs alone at probability 1 (each codec on its own; speed perturbation, VTLP and
SpecAugment beside them, and the filterbank for scale) on 4 s of real recorded speech (the bundled clips,
concatenated), --repeats seeds; the median is reported. Also the time to compute one RIR of the bank.

    python tools/bench_augment_cost.py [--seconds 4] [--repeats 20] [--out runs/bench_augment]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import _bench_common as bc
import numpy as np
import soundfile as sf
import torch

from asr.augment import (
    CODECS,
    BabbleConfig,
    CodecConfig,
    EqConfig,
    GainConfig,
    NoiseConfig,
    RoomConfig,
    SpecAugment,
    TelephoneConfig,
    VtlpConfig,
    WaveAugmenter,
    build_rir_bank,
    speed_perturb,
)
from asr.features import FbankConfig, compute_fbank

SR = 16000
def _median_ms(fn, repeats: int) -> float:
    fn(0)  # warm-up (first calls load libraries)
    times = []
    for seed in range(1, repeats + 1):
        t0 = time.perf_counter()
        fn(seed)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rirs", type=int, default=20, help="RIRs computed to time the bank (default room config)")
    parser.add_argument("--out", default="runs/bench_augment")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    clips = sorted((Path(__file__).resolve().parent.parent / "asr/assets/audio/real").glob("*.flac"))
    speech = np.concatenate([sf.read(str(p), dtype="float32")[0] for p in clips])
    n = int(args.seconds * SR)
    x = torch.from_numpy(np.resize(speech, n))
    other = speech[::-1].copy()

    t0 = time.perf_counter()
    bank = build_rir_bank(RoomConfig(bank_size=args.rirs), seed=0, sample_rate=SR, progress=False)
    rir_ms = 1000 * (time.perf_counter() - t0) / args.rirs

    stages: dict[str, object] = {
        "room": RoomConfig(prob=1.0),
        "noise": NoiseConfig(prob=1.0),
        "babble": BabbleConfig(prob=1.0),
        "eq": EqConfig(prob=1.0),
        "gain": GainConfig(prob=1.0),
        "telephone": TelephoneConfig(prob=1.0),
        **{f"codec:{c}": CodecConfig(prob=1.0, codecs=(c,)) for c in CODECS},
    }
    rows: dict[str, float] = {}
    for name, cfg in stages.items():
        aug = WaveAugmenter.only(**{name.split(":")[0]: cfg}, sample_rate=SR, rir_bank=bank)
        rows[name] = _median_ms(lambda s, aug=aug: aug(x, seed=s, other=lambda rng: other), args.repeats)
    fb = FbankConfig()
    feats = compute_fbank(x, fb)
    vtlp = WaveAugmenter.only(vtlp=VtlpConfig(prob=1.0), sample_rate=SR)
    rows["vtlp (features)"] = _median_ms(lambda s: vtlp.warp_features(feats, seed=s, fbank=fb), args.repeats)
    rows["speed 1.1"] = _median_ms(lambda s: speed_perturb(x, factor=1.1, sample_rate=SR), args.repeats)
    spec = SpecAugment()
    rows["specaugment"] = _median_ms(lambda s: spec(feats, generator=torch.Generator().manual_seed(s)), args.repeats)
    rows["fbank (for scale)"] = _median_ms(lambda s: compute_fbank(x, fb), args.repeats)

    table = [[name, f"{ms:.1f}"] for name, ms in rows.items()]
    table.append(["RIR bank: one RIR (once per run)", f"{rir_ms:.0f}"])
    print(bc.render_table(["stage (prob 1)", f"ms per {args.seconds:g} s utterance"], table))
    bc.write_json(
        Path(args.out) / "bench_augment_cost.json",
        {
            "machine": bc.machine_info(torch.device("cpu")),
            "seconds": args.seconds,
            "repeats": args.repeats,
            "ms": rows,
            "rir_ms": rir_ms,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

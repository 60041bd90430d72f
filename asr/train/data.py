"""Training data: utterances -> (targets, cached audio) -> padded feature batches.

Audio is decoded once and cached in memory as int16 (an hour of 16 kHz audio is ~115 MB), so later epochs only
pay for augmentation (speed, the waveform chain of asr.augment, VTLP), the filterbank and SpecAugment. Problems
are counted by reason and logged, never silently dropped: utterances too long, text the tokenizer cannot encode,
transcripts too long for CTC at the model's frame rate, and audio that fails to load mid-run (skipped for the
rest of the run).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from asr.augment import SPEED_FACTORS, SpecAugment, WaveAugmenter, speed_perturb
from asr.data.manifest import Utterance
from asr.features import FbankConfig, GlobalCMVN, compute_fbank
from asr.text.base import Tokenizer
from asr.train.config import AugmentConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    ids: tuple[str, ...]
    feats: torch.Tensor  # [B, T, n_mels] normalised (and augmented) features, zero-padded
    lengths: torch.Tensor  # [B] valid frames
    targets: torch.Tensor  # [sum(target_lengths)] token ids, concatenated
    target_lengths: torch.Tensor  # [B]
    failed: tuple[str, ...] = ()  # ids whose audio failed to load while building this batch


def ctc_min_frames(targets: Sequence[int]) -> int:
    """Fewest output frames CTC needs for ``targets``: one per token plus a blank between repeats."""
    repeats = sum(1 for a, b in zip(targets, targets[1:]) if a == b)
    return len(targets) + repeats


class TrainingData:
    """The usable utterances of a set with their token targets, and the batch builder."""

    def __init__(
        self,
        utterances: Sequence[Utterance],
        tokenizer: Tokenizer,
        *,
        features: FbankConfig,
        subsampling: int,
        max_seconds: float,
        on_oov: str = "skip_utterance",
        name: str = "train",
        fastest_speed: float = max(SPEED_FACTORS),
    ) -> None:
        self.features = features
        self.name = name
        self.skipped: Counter[str] = Counter()
        self.utterances: list[Utterance] = []
        self.targets: list[list[int]] = []
        for utt in utterances:
            if utt.duration > max_seconds:
                self._skip(utt, f"longer than max_utterance_seconds={max_seconds}")
                continue
            oov = tokenizer.oov(utt.text)
            if oov:
                if on_oov == "raise":
                    raise ValueError(
                        f"{name}: utterance {utt.id} has text the tokenizer cannot encode: {oov}"
                    )
                self._skip(utt, "text outside the tokenizer's inventory")
                continue
            ids = tokenizer.encode(utt.text)
            if not ids:
                self._skip(utt, "empty transcript")
                continue
            frames = features.num_frames(int(utt.duration / fastest_speed * features.sample_rate))
            if frames // subsampling < ctc_min_frames(ids):
                self._skip(utt, "transcript too long for CTC at the model's frame rate")
                continue
            self.utterances.append(utt)
            self.targets.append(ids)
        if self.skipped:
            logger.warning(
                "%s: skipped %d utterances: %s", name, sum(self.skipped.values()), dict(self.skipped)
            )
        if not self.utterances:
            raise ValueError(f"{name}: no usable utterances (skipped: {dict(self.skipped)})")
        self._audio: dict[int, np.ndarray] = {}
        self.failed: set[int] = set()

    def _skip(self, utt: Utterance, reason: str) -> None:
        if self.skipped[reason] < 3:
            logger.info("%s: skipping %s: %s", self.name, utt.id, reason)
        self.skipped[reason] += 1

    def __len__(self) -> int:
        return len(self.utterances)

    def num_frames(self) -> list[int]:
        """Feature frames per utterance (from the durations) for the batcher."""
        sr = self.features.sample_rate
        return [max(1, self.features.num_frames(int(round(u.duration * sr)))) for u in self.utterances]

    def audio(self, i: int) -> torch.Tensor:
        """Samples [N] float32 of utterance ``i``, decoded once and cached as int16."""
        cached = self._audio.get(i)
        if cached is None:
            samples = self.utterances[i].load_audio(target_sr=self.features.sample_rate)
            cached = (samples.clamp(-1.0, 32767 / 32768) * 32768.0).round().to(torch.int16).numpy()
            self._audio[i] = cached
        return torch.from_numpy(cached.astype(np.float32) / 32768.0)

    def _other_audio(self, i: int):
        """Babble source for utterance ``i``: another utterance's samples, drawn with the generator given."""

        def draw(rng: np.random.Generator) -> np.ndarray | None:
            if len(self) < 2:
                return None
            j = int(rng.integers(0, len(self) - 1))
            j += j >= i  # any utterance but i
            if j in self.failed:
                return None
            try:
                return self.audio(j).numpy()
            except ValueError as exc:
                self._fail(j, exc)
                return None

        return draw

    def fit_cmvn(self, *, max_utterances: int, seed: int) -> GlobalCMVN:
        from asr.features import CMVNAccumulator

        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self))[:max_utterances]
        acc = CMVNAccumulator(self.features.n_mels)
        from tqdm import tqdm

        for i in tqdm(order.tolist(), desc=f"cmvn ({self.name})", unit="utt", leave=False):
            try:
                acc.add(compute_fbank(self.audio(i), self.features))
            except ValueError as exc:
                self._fail(i, exc)
        return acc.result()

    def _fail(self, i: int, exc: Exception) -> None:
        if i not in self.failed:
            self.failed.add(i)
            logger.warning(
                "%s: audio of %s failed, skipped from now on: %s", self.name, self.utterances[i].id, exc
            )

    def make_batch(
        self,
        indices: Sequence[int],
        *,
        cmvn: GlobalCMVN,
        augment: AugmentConfig | None,
        generator: torch.Generator | None = None,
        augmenter: WaveAugmenter | None = None,
    ) -> Batch | None:
        """Features and targets for ``indices``; None when every utterance of the batch failed to load.

        ``augmenter``: the waveform chain and VTLP (built once per run: it holds the RIR bank); each utterance
        draws one seed from ``generator`` for it, after its speed factor.
        """
        feats, ids, targets, failed = [], [], [], []
        spec = SpecAugment(augment.spec) if augment and augment.spec_augment else None
        if augmenter is not None and not augmenter.enabled:
            augmenter = None
        for i in indices:
            if i in self.failed:
                failed.append(self.utterances[i].id)
                continue
            try:
                samples = self.audio(i)
            except ValueError as exc:
                self._fail(i, exc)
                failed.append(self.utterances[i].id)
                continue
            if augment and augment.speed_perturb:
                assert generator is not None, "augmentation needs a generator"
                factors = augment.speed_factors
                factor = factors[int(torch.randint(0, len(factors), (1,), generator=generator))]
                samples = speed_perturb(samples, factor=factor, sample_rate=self.features.sample_rate)
            useed = None
            if augmenter is not None:
                assert generator is not None, "augmentation needs a generator"
                useed = int(torch.randint(0, 2**62, (1,), generator=generator))
                samples = augmenter(samples, seed=useed, other=self._other_audio(i)).samples
            x = compute_fbank(samples, self.features)
            if useed is not None:
                x, _ = augmenter.warp_features(x, seed=useed, fbank=self.features)
            x = cmvn.apply(x)
            if spec is not None:
                x = spec(x, generator=generator)
            feats.append(x)
            ids.append(self.utterances[i].id)
            targets.append(self.targets[i])
        if not feats:
            return None
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        padded = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
        for b, f in enumerate(feats):
            padded[b, : f.shape[0]] = f
        return Batch(
            ids=tuple(ids),
            feats=padded,
            lengths=lengths,
            targets=torch.tensor([t for ts in targets for t in ts], dtype=torch.long),
            target_lengths=torch.tensor([len(t) for t in targets], dtype=torch.long),
            failed=tuple(failed),
        )


def seconds_of(utterances: Sequence[Utterance]) -> float:
    return math.fsum(u.duration for u in utterances)

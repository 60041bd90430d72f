"""Training data: utterances -> (targets, cached audio) -> padded feature batches.

Audio is decoded once and cached in memory as int16 (an hour of 16 kHz audio is ~115 MB), so later epochs only
pay for augmentation (speed, the waveform chain of asr.augment, VTLP), the filterbank and SpecAugment. Problems
are counted by reason and logged, never silently dropped: utterances too long, text the tokenizer cannot encode,
transcripts too long for CTC at the model's frame rate, and audio that fails to load mid-run (skipped for the
rest of the run).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from asr.augment import SPEED_FACTORS, SpecAugment, WaveAugmenter, speed_perturb
from asr.data.batching import BatchingConfig, DynamicBatcher, EpochPlan
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
    failures: tuple[tuple[str, str], ...] = ()  # (id, reason) of audio first found broken by this batch's builder
    key: tuple[int, int] = (-1, -1)  # (epoch, batch index) it was built for
    # distillation (TrainingData.teacher set): per utterance, the teacher's log-posteriors [frames, V] or None
    # when the store lacks it, and the speed factor its audio was played at
    teacher: tuple = ()
    speeds: tuple[float, ...] = ()
    sources: tuple[int, ...] = ()  # per utterance, its training set (TrainingData.sources)

    @property
    def empty(self) -> bool:
        """True when every utterance of the batch failed to load (no features)."""
        return not self.ids


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
        sources: Sequence[int] | None = None,
    ) -> None:
        """``sources``: per utterance, which training set it comes from (0 the main one, k the k-th of
        data.extra_train); kept in :attr:`sources` for the utterances kept."""
        self.features = features
        self.name = name
        self.skipped: Counter[str] = Counter()
        self.utterances: list[Utterance] = []
        self.targets: list[list[int]] = []
        self.sources: list[int] = []
        if sources is not None and len(sources) != len(utterances):
            raise ValueError(f"{name}: {len(sources)} source labels for {len(utterances)} utterances")
        for n, utt in enumerate(utterances):
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
            self.sources.append(0 if sources is None else int(sources[n]))
        if self.skipped:
            logger.warning(
                "%s: skipped %d utterances: %s", name, sum(self.skipped.values()), dict(self.skipped)
            )
        if not self.utterances:
            raise ValueError(f"{name}: no usable utterances (skipped: {dict(self.skipped)})")
        self._audio: dict[int, np.ndarray] = {}
        self.failed: set[int] = set()  # utterances whose audio failed in this process (not loaded again)
        self._new_failures: list[tuple[str, str]] = []  # (id, reason) not yet handed out in a Batch
        self.reported: dict[str, str] = {}  # id -> reason, logged by report_failures (the training process)
        self.no_wave_augment: frozenset[int] = frozenset()  # sources the waveform chain leaves alone
        self.teacher = None  # a TeacherStore (asr.distill.store) when the run distils: batches carry its posteriors
        self.teacher_mismatch: set[str] = set()  # ids whose stored posteriors do not fit their audio

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
        self.report_failures(self._drain_failures())
        return acc.result()

    def _teacher_for(self, i: int, num_samples: int):
        """The teacher's posteriors of utterance ``i``, or None when the store lacks it or holds another audio under
        its id (a frame count that does not fit the audio's length: two manifests sharing ids), said once."""
        utt_id = self.utterances[i].id
        posteriors = self.teacher.get(utt_id)
        if posteriors is None:
            return None
        hop = round(self.teacher.frame_seconds * self.features.sample_rate)
        if abs(posteriors.shape[0] - (1 + num_samples // hop)) > 1:
            if utt_id not in self.teacher_mismatch:
                self.teacher_mismatch.add(utt_id)
                logger.warning("%s: the teacher's posteriors of %s have %d frames, its audio needs %d (another "
                               "audio under the same id?): trained without them", self.name, utt_id,
                               posteriors.shape[0], 1 + num_samples // hop)  # fmt: skip
            return None
        return posteriors

    def _fail(self, i: int, exc: Exception) -> None:
        """Note a broken file (it is skipped from now on in this process); logged by report_failures, in the
        training process, from the Batch that carries it (batches may be built in a loader worker)."""
        if i not in self.failed:
            self.failed.add(i)
            self._new_failures.append((self.utterances[i].id, str(exc)))

    def _drain_failures(self) -> tuple[tuple[str, str], ...]:
        out, self._new_failures = tuple(self._new_failures), []
        return out

    def report_failures(self, failures: Sequence[tuple[str, str]]) -> None:
        """Log each newly broken file once (call in the training process with each Batch's ``failures``)."""
        for utt_id, reason in failures:
            if utt_id not in self.reported:
                self.reported[utt_id] = reason
                logger.warning("%s: audio of %s failed, skipped from now on: %s", self.name, utt_id, reason)

    def make_batch(
        self,
        indices: Sequence[int],
        *,
        cmvn: GlobalCMVN,
        augment: AugmentConfig | None,
        generator: torch.Generator | None = None,
        augmenter: WaveAugmenter | None = None,
        key: tuple[int, int] = (-1, -1),
    ) -> Batch:
        """Features and targets for ``indices`` (an empty Batch when every utterance failed to load).

        ``augmenter``: the waveform chain and VTLP (built once per run: it holds the RIR bank); each utterance
        draws one seed from ``generator`` for it, after its speed factor (also for a source the chain leaves
        alone, so that the draws do not depend on the source).
        """
        feats, ids, targets, failed, speeds, sources, teacher = [], [], [], [], [], [], []
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
            if self.teacher is not None:
                teacher.append(self._teacher_for(i, len(samples)))
            factor = 1.0
            if augment and augment.speed_perturb:
                assert generator is not None, "augmentation needs a generator"
                factors = augment.speed_factors
                factor = factors[int(torch.randint(0, len(factors), (1,), generator=generator))]
                samples = speed_perturb(samples, factor=factor, sample_rate=self.features.sample_rate)
            useed = None
            if augmenter is not None:
                assert generator is not None, "augmentation needs a generator"
                useed = int(torch.randint(0, 2**62, (1,), generator=generator))
                if self.sources[i] in self.no_wave_augment:
                    useed = None
                else:
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
            speeds.append(float(factor))
            sources.append(self.sources[i])
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        padded = torch.zeros(len(feats), int(lengths.max()) if feats else 0, self.features.n_mels)
        for b, f in enumerate(feats):
            padded[b, : f.shape[0]] = f
        return Batch(
            ids=tuple(ids),
            feats=padded,
            lengths=lengths,
            targets=torch.tensor([t for ts in targets for t in ts], dtype=torch.long),
            target_lengths=torch.tensor([len(t) for t in targets], dtype=torch.long),
            failed=tuple(failed),
            failures=self._drain_failures(),
            key=key,
            teacher=tuple(teacher),
            speeds=tuple(speeds),
            sources=tuple(sources),
        )


def seconds_of(utterances: Sequence[Utterance]) -> float:
    return math.fsum(u.duration for u in utterances)


def step_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    """The seed of one training step: its batch's augmentation and its dropout."""
    return (seed * 1_000_003 + epoch * 10_007 + batch * 101 + rank) % (2**62)


class Planner(Protocol):
    def plan(self, epoch: int) -> EpochPlan: ...


class BatchSource(torch.utils.data.Dataset):
    """Map-style dataset whose item ``(epoch, b)`` is this rank's batch ``b`` of ``epoch``: utterances from the
    planner, augmentation seeded by :func:`step_seed`. A pure function of (seed, epoch, b, rank), so it does not
    matter which process builds it, nor when (the loader's workers run ahead of training)."""

    def __init__(
        self,
        data: TrainingData,
        planner: Planner,
        *,
        cmvn: GlobalCMVN,
        augment: AugmentConfig,
        augmenter: WaveAugmenter | None,
        seed: int,
        rank: int,
    ) -> None:
        self.data, self.planner, self.cmvn = data, planner, cmvn
        self.augment, self.augmenter = augment, augmenter
        self.seed, self.rank = seed, rank

    def __getitem__(self, key: tuple[int, int]) -> Batch:
        epoch, b = key
        indices = self.planner.plan(epoch).batches[b]
        gen = torch.Generator().manual_seed(step_seed(self.seed, epoch, b, self.rank))
        return self.data.make_batch(
            indices, cmvn=self.cmvn, augment=self.augment, generator=gen, augmenter=self.augmenter, key=key
        )


def _single(batch: Batch) -> Batch:  # the DataLoader's collate_fn: one item is one batch already
    return batch


def batch_stream(
    source: BatchSource, keys: Sequence[tuple[int, int]], *, num_workers: int, prefetch: int = 4
) -> Iterator[Batch]:
    """The batches of ``keys``, in order: built in ``num_workers`` DataLoader worker processes that run up to
    ``prefetch`` batches each ahead of the consumer (0 workers: built in this process when asked for)."""
    if num_workers == 0:
        return (source[k] for k in keys)
    loader = torch.utils.data.DataLoader(
        source,
        sampler=list(keys),
        batch_size=None,
        collate_fn=_single,
        num_workers=num_workers,
        prefetch_factor=prefetch,
        generator=torch.Generator().manual_seed(0),  # (unused seeds; keeps the global RNG untouched)
    )
    return iter(loader)


@dataclass(frozen=True)
class ExtraSet:
    """One extra training set inside TrainingData: its source label and share of every epoch's audio."""

    source: int  # label in TrainingData.sources
    share: float  # fraction of each epoch's frames drawn from it (with replacement)


class MixedPlanner:
    """Epoch plans over the main set plus shares of extra sets (data.extra_train).

    Each epoch takes every main utterance once and draws utterances of each extra set uniformly with replacement
    (a generator seeded by (seed, epoch, source)) until the set holds ``share`` of the epoch's frames; the whole
    list is then bucketed and packed like the main set alone (:class:`DynamicBatcher`), so real and synthetic
    utterances of similar lengths share batches. Plans are pure functions of (seed, epoch, rank).
    """

    def __init__(
        self,
        frames: Sequence[int],
        sources: Sequence[int],
        extras: Sequence[ExtraSet],
        *,
        config: BatchingConfig,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        total = math.fsum(e.share for e in extras)
        if not extras or total >= 1.0:
            raise ValueError(f"extra training sets need shares summing to < 1, got {[e.share for e in extras]}")
        self.config, self.rank, self.world_size = config, rank, world_size
        self.frames = np.asarray(frames, dtype=np.int64)
        fits = (self.frames > 0) & (self.frames <= config.max_frames)  # the others: reported by DynamicBatcher
        src = np.asarray(sources)
        self.main = np.flatnonzero(fits & (src == 0))
        self.extras = [(e, np.flatnonzero(fits & (src == e.source))) for e in extras]
        empty = [e.source for e, idx in self.extras if idx.size == 0]
        if empty or self.main.size == 0:
            raise ValueError(f"no usable utterances in training set(s) {empty or [0]} for mixing")
        main_frames = float(self.frames[self.main].sum())
        self.targets = [e.share / (1.0 - total) * main_frames for e, _ in self.extras]  # frames per epoch
        self._cache: EpochPlan | None = None

    def members(self, epoch: int) -> np.ndarray:
        """The epoch's utterance indices: the main set, then the draws from each extra set."""
        parts = [self.main]
        for (extra, idx), target in zip(self.extras, self.targets):
            rng = np.random.default_rng([self.config.seed, epoch, extra.source, 0x4D4958])
            mean = float(self.frames[idx].mean())
            draws = rng.integers(0, idx.size, size=int(target / mean * 1.5) + 8)
            cum = np.cumsum(self.frames[idx[draws]])
            parts.append(idx[draws[: int(np.searchsorted(cum, target)) + 1]])
        return np.concatenate(parts)

    def plan(self, epoch: int) -> EpochPlan:
        if self._cache is not None and self._cache.epoch == epoch:
            return self._cache
        members = self.members(epoch)
        batcher = DynamicBatcher(
            self.frames[members].tolist(), config=self.config, rank=self.rank, world_size=self.world_size
        )
        plan = batcher.plan(epoch)
        self._cache = dataclasses.replace(
            plan, batches=tuple(tuple(int(members[i]) for i in b) for b in plan.batches)
        )
        return self._cache

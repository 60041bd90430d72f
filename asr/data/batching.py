"""Length-bucketed dynamic batching by total padded frames, deterministic per (seed, epoch) and per DDP rank.

A batch's cost is its padded size, ``max(lengths in batch) * batch size``, and it never exceeds
``max_frames``. Utterances are sorted by length into equal-count buckets (fixed for the dataset); each epoch
every bucket is shuffled with a generator seeded by ``(seed, epoch)`` and packed greedily into batches, and
the batches of all buckets are shuffled together. Every rank computes the same global plan and takes every
``world_size``-th batch (rank r gets global batches r, r + W, r + 2W, ...), so the ranks see disjoint batches
and, by construction, the same number of batches:

* ``remainder="pad"`` (default): when the batch count is not a multiple of ``world_size``, the first global
  batches of the epoch are repeated at the end to fill the last round (every utterance is seen at least once;
  :meth:`DynamicBatcher.plan` marks the repeats so evaluation can skip them).
* ``remainder="drop"``: the last ``count % world_size`` global batches are left out of this epoch (different
  ones each epoch, since the order is reshuffled); how many is logged.

Utterances that cannot fit any batch (longer than ``max_frames``, or empty) are listed in
:attr:`DynamicBatcher.skipped` with the reason (on every rank) and logged by rank 0: nothing is dropped
silently.

Resuming mid-epoch: save ``state_dict(batches_done=k)`` (k = batches this rank has trained on in the
current epoch; pass it explicitly, since a DataLoader prefetches ahead of training), and after
``load_state_dict`` the next iteration yields the same plan from batch k on.

Usage with PyTorch: ``DataLoader(dataset, batch_sampler=batcher)``, calling ``batcher.set_epoch(epoch)``
before each epoch (without it every iteration repeats the same epoch's plan, like ``DistributedSampler``).
"""

from __future__ import annotations

import hashlib
import logging
import operator
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["BatchingConfig", "DynamicBatcher", "EpochPlan", "SkippedUtterance"]

_STATE_VERSION = 1


@dataclass(frozen=True)
class BatchingConfig:
    max_frames: int  # padded budget per batch: longest utterance x number of utterances <= max_frames
    max_batch_size: int | None = None  # at most this many utterances per batch; None = only max_frames limits
    num_buckets: int = 20  # equal-count length buckets; a batch takes utterances of one bucket only
    shuffle: bool = True  # False: batches of the length-sorted data, longest first, same every epoch
    seed: int = 0  # with the epoch, seeds the shuffles; the same on every rank
    remainder: Literal["pad", "drop"] = "pad"  # equalising the per-rank batch count: see the module docstring

    def __post_init__(self) -> None:
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.max_batch_size is not None and self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1 or None, got {self.max_batch_size}")
        if self.num_buckets < 1:
            raise ValueError(f"num_buckets must be >= 1, got {self.num_buckets}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.remainder not in ("pad", "drop"):
            raise ValueError(f"remainder must be 'pad' or 'drop', got {self.remainder!r}")


@dataclass(frozen=True)
class SkippedUtterance:
    index: int  # position in the lengths given to the batcher
    utt_id: str | None  # its id, when ids were given
    frames: int
    reason: str


@dataclass(frozen=True)
class EpochPlan:
    """One rank's batches for one epoch."""

    epoch: int
    batches: tuple[tuple[int, ...], ...]  # utterance indices per batch, longest first within a batch
    repeated: tuple[bool, ...]  # per batch: True for a repeat added by remainder="pad"
    num_global_batches: int  # batches formed over all ranks before padding or dropping
    num_dropped: int  # global batches left out by remainder="drop"


class DynamicBatcher:
    """Batch sampler over utterance lengths in frames (module docstring). Iterating yields index lists."""

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        config: BatchingConfig,
        rank: int = 0,
        world_size: int = 1,
        ids: Sequence[str] | None = None,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if ids is not None and len(ids) != len(lengths):
            raise ValueError(f"got {len(ids)} ids for {len(lengths)} lengths")
        self.config = config
        self.rank = rank
        self.world_size = world_size
        frames = _as_frames(lengths, ids)
        self.skipped: list[SkippedUtterance] = []
        for i, n in enumerate(frames):
            reason = None
            if n == 0:
                reason = "empty (0 frames)"
            elif n > config.max_frames:
                reason = f"{n} frames > max_frames={config.max_frames}"
            if reason:
                self.skipped.append(SkippedUtterance(i, None if ids is None else str(ids[i]), n, reason))
        skipped = {s.index for s in self.skipped}
        kept = np.array([i for i in range(len(frames)) if i not in skipped], dtype=np.int64)
        if kept.size == 0:
            raise ValueError(
                f"no utterance fits a batch: all {len(frames)} skipped "
                f"(first: {self.skipped[0].reason if self.skipped else 'no utterances given'})"
            )
        if self.skipped and rank == 0:  # every rank skips the same utterances; one report is enough
            logger.warning(
                "batching skips %d of %d utterances, e.g. %s",
                len(self.skipped),
                len(frames),
                "; ".join(f"{s.utt_id or s.index}: {s.reason}" for s in self.skipped[:5]),
            )
        self._frames = np.asarray(frames, dtype=np.int64)  # [N] all utterances, skipped included
        self._frames_list = frames  # the same as Python ints, for the packing loop
        # Sorted by (length, index): a total order, so the buckets never depend on input tie order.
        by_length = kept[np.lexsort((kept, self._frames[kept]))]
        self._sorted = by_length
        self._buckets = np.array_split(by_length, min(config.num_buckets, by_length.size))  # none empty
        digest = hashlib.sha256(self._frames.tobytes())
        digest.update(repr(sorted(asdict(config).items())).encode())
        self._fingerprint = digest.hexdigest()[:16]
        self._epoch = 0
        self._start_batch = 0
        self._yielded = 0
        self._cache: EpochPlan | None = None

    # -- planning (pure functions of lengths, config, epoch, rank, world_size) -------------------------------

    @property
    def num_kept(self) -> int:
        return int(self._sorted.size)

    def global_batches(self, epoch: int) -> list[tuple[int, ...]]:
        """All batches of ``epoch`` over all ranks, before the remainder policy."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        cfg = self.config
        if not cfg.shuffle:
            return self._pack(self._sorted[::-1])
        rng = np.random.default_rng([cfg.seed, epoch])
        batches = [b for bucket in self._buckets for b in self._pack(rng.permutation(bucket))]
        return [batches[i] for i in rng.permutation(len(batches))]

    def plan(self, epoch: int) -> EpochPlan:
        """This rank's batches for ``epoch`` (cached for the last epoch asked)."""
        if self._cache is not None and self._cache.epoch == epoch:
            return self._cache
        batches = self.global_batches(epoch)
        n, w = len(batches), self.world_size
        repeated = [False] * n
        dropped = 0
        if n % w and self.config.remainder == "pad":
            extra = w - n % w
            batches = batches + [batches[i % n] for i in range(extra)]
            repeated += [True] * extra
        elif n % w:
            dropped = n % w
            batches, repeated = batches[: n - dropped], repeated[: n - dropped]
            if not batches:
                raise ValueError(
                    f"remainder='drop' leaves no batch: only {n} batches for world_size={w} "
                    "(use remainder='pad' or a smaller max_frames)"
                )
            if self.rank == 0:
                logger.info("epoch %d: dropping %d of %d batches (remainder='drop')", epoch, dropped, n)
        self._cache = EpochPlan(
            epoch=epoch,
            batches=tuple(batches[self.rank :: w]),
            repeated=tuple(repeated[self.rank :: w]),
            num_global_batches=n,
            num_dropped=dropped,
        )
        return self._cache

    def padded_frames(self, batch: Sequence[int]) -> int:
        """The padded size of a batch: longest utterance x batch size."""
        return int(self._frames[list(batch)].max()) * len(batch) if len(batch) else 0

    def efficiency(self, epoch: int) -> float:
        """Real frames / padded frames over this rank's batches of ``epoch`` (1.0 = no padding)."""
        batches = self.plan(epoch).batches
        real = sum(int(self._frames[list(b)].sum()) for b in batches)
        return real / sum(self.padded_frames(b) for b in batches)

    def _pack(self, order: np.ndarray) -> list[tuple[int, ...]]:
        """Greedy packing of ``order`` (utterance indices) into batches within the budget."""
        cfg = self.config
        cap = cfg.max_batch_size or order.size
        batches: list[tuple[int, ...]] = []
        current: list[int] = []
        longest = 0
        frames = self._frames_list
        for idx in order.tolist():
            n = frames[idx]
            if current and (max(longest, n) * (len(current) + 1) > cfg.max_frames or len(current) == cap):
                batches.append(self._finish(current))
                current, longest = [], 0
            current.append(idx)
            longest = max(longest, n)
        if current:
            batches.append(self._finish(current))
        return batches

    def _finish(self, batch: list[int]) -> tuple[int, ...]:
        frames = self._frames_list
        return tuple(sorted(batch, key=lambda i: (-frames[i], i)))

    # -- sampler protocol and resuming -----------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._epoch

    def set_epoch(self, epoch: int, *, start_batch: int = 0) -> None:
        """Select the epoch the next iteration yields, starting at this rank's batch ``start_batch``."""
        n = len(self.plan(epoch).batches)
        if not 0 <= start_batch <= n:
            raise ValueError(
                f"start_batch={start_batch} outside [0, {n}] for epoch {epoch} on rank {self.rank}"
            )
        self._epoch, self._start_batch, self._yielded = epoch, start_batch, start_batch

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.plan(self._epoch).batches
        start, self._start_batch = self._start_batch, 0  # a later iteration starts at the beginning again
        for k in range(start, len(batches)):
            self._yielded = k + 1
            yield list(batches[k])

    def __len__(self) -> int:
        """Batches the next iteration yields (fewer than the epoch's count after resuming mid-epoch)."""
        return len(self.plan(self._epoch).batches) - self._start_batch

    def state_dict(self, *, batches_done: int | None = None) -> dict[str, Any]:
        """Where this epoch stands. ``batches_done``: batches trained on in this epoch (default: the number
        this batcher has yielded, which runs ahead of training when a DataLoader prefetches)."""
        done = self._yielded if batches_done is None else batches_done
        return {
            "version": _STATE_VERSION,
            "epoch": self._epoch,
            "batches_done": int(done),
            "world_size": self.world_size,
            "fingerprint": self._fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration yields ``state``'s epoch from batch ``batches_done`` on. The lengths,
        config and world size must be those the state was saved with (any rank's state serves every rank)."""
        mismatches = [
            f"{key}: saved {state.get(key)!r}, here {here!r}"
            for key, here in [
                ("version", _STATE_VERSION),
                ("world_size", self.world_size),
                ("fingerprint", self._fingerprint),
            ]
            if state.get(key) != here
        ]
        if mismatches:
            raise ValueError(
                "batcher state does not match this batcher (fingerprint covers lengths and config): "
                + "; ".join(mismatches)
            )
        self.set_epoch(int(state["epoch"]), start_batch=int(state["batches_done"]))


def _as_frames(lengths: Sequence[int], ids: Sequence[str] | None) -> list[int]:
    out = []
    for i, n in enumerate(lengths):
        name = f"utterance {i}" + (f" ({ids[i]})" if ids is not None else "")
        try:
            frames = operator.index(n)
        except TypeError as err:
            raise ValueError(f"{name}: length must be an integer frame count, got {n!r}") from err
        if frames < 0:
            raise ValueError(f"{name}: negative length {frames}")
        out.append(frames)
    return out

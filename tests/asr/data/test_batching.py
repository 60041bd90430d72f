import json
import logging
from collections import Counter

import numpy as np
import pytest
import torch

from asr.data.batching import BatchingConfig, DynamicBatcher


def _lengths(n: int = 500, seed: int = 0, low: int = 50, high: int = 1600) -> list[int]:
    return np.random.default_rng(seed).integers(low, high, size=n).tolist()


def _flat(batches) -> list[int]:
    return [i for b in batches for i in b]


@pytest.mark.parametrize("max_batch_size", [None, 7])
@pytest.mark.parametrize("max_frames", [1600, 5000, 20000])
def test_batches_respect_frame_budget_and_cover_everything_once(max_frames: int, max_batch_size) -> None:
    lengths = _lengths()
    cfg = BatchingConfig(max_frames=max_frames, max_batch_size=max_batch_size, seed=3)
    batcher = DynamicBatcher(lengths, config=cfg)
    for epoch in range(3):
        batcher.set_epoch(epoch)
        batches = list(batcher)
        assert len(batches) == len(batcher.plan(epoch).batches)
        for b in batches:
            assert max(lengths[i] for i in b) * len(b) <= max_frames
            assert batcher.padded_frames(b) <= max_frames
            assert max_batch_size is None or len(b) <= max_batch_size
            assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
        assert sorted(_flat(batches)) == list(range(len(lengths)))  # world_size 1: each exactly once


def test_deterministic_per_seed_and_epoch_and_reshuffled_across_epochs() -> None:
    lengths = _lengths()
    cfg = BatchingConfig(max_frames=8000, seed=11)
    a, b = DynamicBatcher(lengths, config=cfg), DynamicBatcher(list(lengths), config=cfg)
    assert a.plan(0) == b.plan(0) and a.plan(5) == b.plan(5)
    e0, e1 = set(a.plan(0).batches), set(a.plan(1).batches)
    assert e0 != e1 and len(e0 & e1) < len(e0) // 2  # new batch compositions, not just a new order
    other_seed = DynamicBatcher(lengths, config=BatchingConfig(max_frames=8000, seed=12))
    assert other_seed.plan(0).batches != a.plan(0).batches


def test_buckets_reduce_padding() -> None:
    lengths = _lengths(n=2000, seed=1)
    effs = {
        k: DynamicBatcher(lengths, config=BatchingConfig(max_frames=20000, num_buckets=k)).efficiency(0)
        for k in (1, 20)
    }
    assert effs[20] > 0.9 > effs[1]


def test_unshuffled_is_length_sorted_and_epoch_independent() -> None:
    lengths = _lengths(n=100)
    batcher = DynamicBatcher(lengths, config=BatchingConfig(max_frames=4000, shuffle=False))
    batches = batcher.plan(0).batches
    assert batches == batcher.plan(7).batches
    order = [lengths[i] for i in _flat(batches)]
    assert order == sorted(lengths, reverse=True)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ranks_pad_to_equal_counts_with_disjoint_coverage(world_size: int) -> None:
    lengths = _lengths(n=301)
    cfg = BatchingConfig(max_frames=6000, seed=5)
    for epoch in range(3):
        plans = [
            DynamicBatcher(lengths, config=cfg, rank=r, world_size=world_size).plan(epoch)
            for r in range(world_size)
        ]
        assert len({len(p.batches) for p in plans}) == 1  # same number of steps on every rank
        fresh = [b for p in plans for b, rep in zip(p.batches, p.repeated) if not rep]
        assert sorted(_flat(fresh)) == list(range(len(lengths)))  # disjoint, complete
        n_global = plans[0].num_global_batches
        repeats = [b for p in plans for b, rep in zip(p.batches, p.repeated) if rep]
        assert len(repeats) == (-n_global) % world_size
        assert all(b in fresh for b in repeats)


def test_ranks_drop_remainder() -> None:
    lengths = _lengths(n=301)
    cfg = BatchingConfig(max_frames=6000, seed=5, remainder="drop")
    world_size = 4
    for epoch in range(4):
        plans = [
            DynamicBatcher(lengths, config=cfg, rank=r, world_size=world_size).plan(epoch)
            for r in range(world_size)
        ]
        assert len({len(p.batches) for p in plans}) == 1
        assert not any(rep for p in plans for rep in p.repeated)
        seen = _flat(b for p in plans for b in p.batches)
        assert len(seen) == len(set(seen))
        assert plans[0].num_dropped == plans[0].num_global_batches % world_size
        assert len(plans[0].batches) * world_size == plans[0].num_global_batches - plans[0].num_dropped
    with pytest.raises(ValueError, match="leaves no batch"):
        cfg = BatchingConfig(max_frames=100, num_buckets=1, remainder="drop")
        DynamicBatcher([10, 10], config=cfg, world_size=2).plan(0)  # one batch for two ranks


def test_fewer_batches_than_ranks_pads_every_rank() -> None:
    cfg = BatchingConfig(max_frames=1000, num_buckets=1)
    plans = [DynamicBatcher([100, 200], config=cfg, rank=r, world_size=3).plan(0) for r in range(3)]
    assert plans[0].num_global_batches == 1
    assert [len(p.batches) for p in plans] == [1, 1, 1]
    assert [p.repeated for p in plans] == [(False,), (True,), (True,)]


def test_too_long_and_empty_utterances_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    lengths = [100, 5000, 0, 300, 1001, 1000]
    ids = [f"utt{i}" for i in range(len(lengths))]
    with caplog.at_level(logging.WARNING):
        batcher = DynamicBatcher(lengths, config=BatchingConfig(max_frames=1000), ids=ids)
    assert [(s.index, s.utt_id, s.frames) for s in batcher.skipped] == [
        (1, "utt1", 5000),
        (2, "utt2", 0),
        (4, "utt4", 1001),
    ]
    assert "max_frames=1000" in batcher.skipped[0].reason and "empty" in batcher.skipped[1].reason
    assert "3 of 6" in caplog.text and "utt1" in caplog.text
    assert sorted(_flat(batcher)) == [0, 3, 5]
    assert batcher.num_kept == 3
    with pytest.raises(ValueError, match="all 2 skipped"):
        DynamicBatcher([2000, 3000], config=BatchingConfig(max_frames=1000))


def test_resume_mid_epoch_continues_the_same_plan() -> None:
    lengths = _lengths()
    cfg = BatchingConfig(max_frames=5000, seed=2)
    world_size = 2
    for rank in range(world_size):
        full = DynamicBatcher(lengths, config=cfg, rank=rank, world_size=world_size)
        full.set_epoch(3)
        expected = list(full)

        first = DynamicBatcher(lengths, config=cfg, rank=rank, world_size=world_size)
        first.set_epoch(3)
        it = iter(first)
        done = [next(it) for _ in range(10)]
        next(it)  # a prefetching loader runs ahead of training: the explicit count is what is saved
        state = json.loads(json.dumps(first.state_dict(batches_done=len(done))))
        assert first.state_dict()["batches_done"] == 11  # the default: what was yielded

        resumed = DynamicBatcher(lengths, config=cfg, rank=rank, world_size=world_size)
        resumed.load_state_dict(state)
        assert resumed.epoch == 3 and len(resumed) == len(expected) - 10
        assert done + list(resumed) == expected
        assert len(resumed) == len(expected)  # the iteration after the resumed one starts at batch 0
        resumed.set_epoch(4)
        assert [tuple(b) for b in resumed] == list(full.plan(4).batches)


def test_resume_refuses_a_different_dataset_config_or_world_size() -> None:
    lengths = _lengths(n=50)
    cfg = BatchingConfig(max_frames=3000)
    state = DynamicBatcher(lengths, config=cfg).state_dict(batches_done=2)
    with pytest.raises(ValueError, match="fingerprint"):
        DynamicBatcher(lengths[:-1], config=cfg).load_state_dict(state)
    with pytest.raises(ValueError, match="fingerprint"):
        DynamicBatcher(lengths, config=BatchingConfig(max_frames=3000, seed=1)).load_state_dict(state)
    with pytest.raises(ValueError, match="world_size"):
        DynamicBatcher(lengths, config=cfg, world_size=2).load_state_dict(state)
    with pytest.raises(ValueError, match="start_batch=999"):
        DynamicBatcher(lengths, config=cfg).load_state_dict({**state, "batches_done": 999})


def test_bad_inputs_raise_naming_values() -> None:
    cfg = BatchingConfig(max_frames=100)
    with pytest.raises(ValueError, match=r"utterance 1 \(b\): negative length -5"):
        DynamicBatcher([10, -5], config=cfg, ids=["a", "b"])
    with pytest.raises(ValueError, match="integer frame count, got 2.5"):
        DynamicBatcher([10, 2.5], config=cfg)
    with pytest.raises(ValueError, match="2 ids for 1 lengths"):
        DynamicBatcher([10], config=cfg, ids=["a", "b"])
    with pytest.raises(ValueError, match="rank=2, world_size=2"):
        DynamicBatcher([10], config=cfg, rank=2, world_size=2)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        DynamicBatcher([10], config=cfg).plan(-1)
    bad_fields = {"max_frames": 0, "max_batch_size": 0, "num_buckets": 0, "seed": -1, "remainder": "wrap"}
    for field, value in bad_fields.items():
        with pytest.raises(ValueError, match=f"{field} must be"):
            BatchingConfig(**{"max_frames": 10, field: value})


def test_numpy_lengths_and_torch_dataloader() -> None:
    lengths = np.random.default_rng(4).integers(10, 200, size=40)

    class _Lengths(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(lengths)

        def __getitem__(self, i: int) -> int:
            return int(lengths[i])

    batcher = DynamicBatcher(lengths, config=BatchingConfig(max_frames=600, seed=9))
    loader = torch.utils.data.DataLoader(_Lengths(), batch_sampler=batcher, collate_fn=list)
    assert len(loader) == len(batcher.plan(0).batches)
    assert [b for b in loader] == [[int(lengths[i]) for i in b] for b in batcher.plan(0).batches]
    assert Counter(x for b in loader for x in b) == Counter(lengths.tolist())

"""asr.train.data: the waveform chain inside batches (seeded per batch; off is bit-identical to no chain), batches
built by loader workers exactly as in process, and extra training sets mixed into every epoch at a share."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from asr.augment import WaveAugmenter, build_rir_bank
from asr.data.batching import BatchingConfig, DynamicBatcher
from asr.data.manifest import Utterance
from asr.data.sources import load_utterances
from asr.features import FbankConfig, GlobalCMVN
from asr.text.tokenizers import build_tokenizer
from asr.train.config import AugmentConfig, ExtraTrainConfig
from asr.train.data import BatchSource, ExtraSet, MixedPlanner, TrainingData, batch_stream
from asr.train.trainer import load_train_config

FB = FbankConfig(n_mels=40)
EVERY_STAGE = {
    "vtlp": {"prob": 1.0},
    "room": {"prob": 1.0, "bank_size": 2, "rt60_range": [0.15, 0.25], "room_max": [5.0, 4.0, 3.0]},
    "noise": {"prob": 1.0},
    "babble": {"prob": 1.0},
    "eq": {"prob": 1.0},
    "gain": {"prob": 1.0},
    "telephone": {"prob": 1.0},
    "codec": {"prob": 1.0},
}


@pytest.fixture(scope="module")
def data(tiny_corpus) -> TrainingData:
    utts = load_utterances(tiny_corpus["train"])
    tok = build_tokenizer("char", texts=[u.text for u in utts])
    return TrainingData(utts, tok, features=FB, subsampling=4, max_seconds=30.0)


def _batch(data, augment, seed, augmenter=None):
    cmvn = GlobalCMVN(mean=torch.zeros(FB.n_mels), std=torch.ones(FB.n_mels), count=1)
    gen = torch.Generator().manual_seed(seed)
    return data.make_batch([0, 1, 2, 3], cmvn=cmvn, augment=augment, generator=gen, augmenter=augmenter)


def test_recipe_keys_reach_every_stage():
    config = load_train_config(None, {"augment": {**EVERY_STAGE, "codec": {"prob": 0.3, "codecs": ["gsm", "opus"]}}})
    assert config.augment.room.bank_size == 2 and config.augment.codec.codecs == ("gsm", "opus")
    assert config.augment.vtlp.prob == 1.0 and config.augment.noise.snr_db_range == (5.0, 35.0)  # defaults kept
    with pytest.raises(ValueError, match="augment.noise.prob must be in"):
        load_train_config(None, {"augment": {"noise": {"prob": 2}}})
    with pytest.raises(ValueError, match="unknown config key 'augment.room.bogus'"):
        load_train_config(None, {"augment": {"room": {"bogus": 1}}})
    assert TrainingData.__init__.__kwdefaults__["fastest_speed"] == 1.1 and AugmentConfig().fastest_speed == 1.1


def test_chain_off_is_bit_identical_and_chain_on_is_seeded(data):
    plain = AugmentConfig()
    off = WaveAugmenter.from_config(plain, sample_rate=FB.sample_rate)
    a, b = _batch(data, plain, 7), _batch(data, plain, 7, augmenter=off)
    assert torch.equal(a.feats, b.feats)  # every stage at 0: the same draws and features as without a chain

    world = load_train_config(None, {"augment": EVERY_STAGE}).augment
    bank = build_rir_bank(world.room, seed=0, sample_rate=FB.sample_rate, progress=False)
    chain = WaveAugmenter.from_config(world, sample_rate=FB.sample_rate, rir_bank=bank)
    x, y, z = (_batch(data, world, s, augmenter=chain) for s in (7, 7, 8))
    assert torch.equal(x.feats, y.feats) and torch.equal(x.lengths, y.lengths)  # pure function of the seed
    assert not torch.equal(x.feats, z.feats)
    assert torch.isfinite(x.feats).all()
    gain_only = load_train_config(None, {"augment": {"gain": {"prob": 1.0}}}).augment
    g = _batch(data, gain_only, 7, augmenter=WaveAugmenter.from_config(gain_only, sample_rate=FB.sample_rate))
    assert torch.equal(x.lengths, g.lengths)  # the same speed factors, and every stage keeps the length
    assert not torch.equal(x.feats, g.feats)
    json.dumps(x.ids)  # plain ids


def _source(data, planner, augment=None, augmenter=None, seed=3):
    cmvn = GlobalCMVN(mean=torch.zeros(FB.n_mels), std=torch.ones(FB.n_mels), count=1)
    return BatchSource(data, planner, cmvn=cmvn, augment=augment or AugmentConfig(), augmenter=augmenter, seed=seed,
                       rank=0)  # fmt: skip


def test_loader_workers_build_exactly_the_in_process_batches(data):
    batcher = DynamicBatcher(data.num_frames(), config=BatchingConfig(max_frames=800, seed=1))
    keys = [(e, b) for e in (0, 1) for b in range(len(batcher.plan(e).batches))][1:]  # as after a resume
    world = load_train_config(None, {"augment": {"noise": {"prob": 0.5}, "babble": {"prob": 0.5}}}).augment
    source = _source(data, batcher, world, WaveAugmenter.from_config(world, sample_rate=FB.sample_rate))
    here = list(batch_stream(source, keys, num_workers=0))
    for workers in (1, 2):
        there = list(batch_stream(source, keys, num_workers=workers, prefetch=2))
        assert [b.key for b in there] == keys == [b.key for b in here]
        for a, b in zip(here, there):
            assert a.ids == b.ids and torch.equal(a.feats, b.feats) and torch.equal(a.targets, b.targets)


def test_broken_audio_found_in_a_worker_is_reported_once_by_the_trainer(tiny_corpus, tmp_path, caplog):
    utts = load_utterances(tiny_corpus["train"])[:4]
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"not audio" * 50)
    utts.append(Utterance(id="bad-1", audio=str(broken), duration=1.0, text="ONE", speaker="x"))
    data = TrainingData(utts, build_tokenizer("char", texts=[u.text for u in utts]), features=FB, subsampling=4,
                        max_seconds=30.0)  # fmt: skip
    batcher = DynamicBatcher(data.num_frames(), config=BatchingConfig(max_frames=100_000, max_batch_size=1, seed=0))
    keys = [(e, b) for e in (0, 1) for b in range(len(batcher.plan(e).batches))]
    with caplog.at_level(logging.WARNING, logger="asr.train.data"):
        for batch in batch_stream(_source(data, batcher), keys, num_workers=1):
            data.report_failures(batch.failures)
            assert batch.empty == (batch.failed == ("bad-1",))
    assert sum("bad-1" in r.getMessage() for r in caplog.records) == 1 and list(data.reported) == ["bad-1"]


def _frames_by_source(data, planner, epoch):
    frames = data.num_frames()
    out = [0, 0]
    for batch in planner.plan(epoch).batches:
        for i in batch:
            out[data.sources[i]] += frames[i]
    return out


def test_mixed_planner_draws_the_share_of_every_epoch(tiny_corpus):
    utts = load_utterances(tiny_corpus["train"]) + load_utterances(tiny_corpus["dev"])
    sources = [0] * 24 + [1] * 6
    data = TrainingData(utts, build_tokenizer("char", texts=[u.text for u in utts]), features=FB, subsampling=4,
                        max_seconds=30.0, sources=sources)  # fmt: skip
    config = BatchingConfig(max_frames=1500, num_buckets=2, seed=5)
    planner = MixedPlanner(data.num_frames(), data.sources, [ExtraSet(source=1, share=0.3)], config=config)
    members = {}
    for epoch in range(4):
        main, extra = _frames_by_source(data, planner, epoch)
        assert extra / (main + extra) == pytest.approx(0.3, abs=0.05)
        ids = [i for b in planner.plan(epoch).batches for i in b]
        assert sorted(i for i in ids if data.sources[i] == 0) == list(range(24))  # every main utterance once
        members[epoch] = ids
    assert members[0] != members[1]  # new draws (and order) every epoch
    again = MixedPlanner(data.num_frames(), data.sources, [ExtraSet(source=1, share=0.3)], config=config)
    assert all([i for b in again.plan(e).batches for i in b] == members[e] for e in range(4))  # f(seed, epoch)
    ranks = [MixedPlanner(data.num_frames(), data.sources, [ExtraSet(1, 0.3)], config=config, rank=r, world_size=2)
             for r in (0, 1)]  # fmt: skip
    assert len(ranks[0].plan(2).batches) == len(ranks[1].plan(2).batches)
    assert set(ranks[0].plan(2).batches) | set(ranks[1].plan(2).batches) == set(planner.plan(2).batches)
    assert not set(ranks[0].plan(2).batches) & set(ranks[1].plan(2).batches[:-1])  # disjoint (but the pad)
    with pytest.raises(ValueError, match="sum"):
        MixedPlanner(data.num_frames(), data.sources, [ExtraSet(1, 0.6), ExtraSet(2, 0.5)], config=config)


def test_extra_train_recipe_key(tiny_corpus):
    config = load_train_config(None, {"data": {"extra_train": [{"manifest": "real.jsonl", "share": 0.2}]}})
    assert config.data.extra_train == (ExtraTrainConfig(manifest="real.jsonl", share=0.2, augment=True),)
    with pytest.raises(ValueError, match="needs a manifest"):
        load_train_config(None, {"data": {"extra_train": [{"share": 0.2}]}})
    with pytest.raises(ValueError, match=r"share must be in \(0, 1\)"):
        load_train_config(None, {"data": {"extra_train": [{"manifest": "x", "share": 1.5}]}})


def test_a_training_set_may_have_its_own_distillation_weight():
    """distill.weight is the main set's (and the default); an extra set's distill_weight overrides it: the teacher
    on the real recordings only is distill.weight 0 with the real set's weight > 0."""
    real = {"manifest": "real.jsonl", "share": 0.2, "distill_weight": 0.3}
    config = load_train_config(None, {"data": {"extra_train": [real]}, "distill": {"teacher": "store"}})
    assert config.distill_weights == (0.0, 0.3) and config.distills
    both = load_train_config(None, {"data": {"extra_train": [{**real, "distill_weight": None}]},
                                    "distill": {"teacher": "store", "weight": 0.1}})  # fmt: skip
    assert both.distill_weights == (0.1, 0.1)
    assert not load_train_config(None, {}).distills
    with pytest.raises(ValueError, match="need distill.teacher"):
        load_train_config(None, {"data": {"extra_train": [real]}})
    with pytest.raises(ValueError, match="distill_weight must be >= 0"):
        load_train_config(None, {"data": {"extra_train": [{**real, "distill_weight": -1}]}})


def test_resume_accepts_keys_newer_than_the_run_only_at_their_defaults(tmp_path):
    import yaml

    from asr.configs import config_to_dict
    from asr.train.resume import check_resume_config as _check_resume_config
    from asr.train.trainer import _Metrics

    def as_yaml(config):
        return yaml.safe_load(yaml.safe_dump(config_to_dict(config), sort_keys=False))

    current = as_yaml(load_train_config(None, {}))
    saved = {**current, "augment": {k: v for k, v in current["augment"].items() if k not in ("room", "codec")}}
    _check_resume_config(saved, current)  # a run from before augment.room / augment.codec existed
    _check_resume_config(current, as_yaml(load_train_config(None, {"data": {"num_workers": 0}})))  # allowed
    _check_resume_config(current, as_yaml(load_train_config(None, {"num_threads": 2})))  # allowed: same maths
    with pytest.raises(ValueError, match="init_from"):  # a warm start is part of what the run is
        _check_resume_config(current, as_yaml(load_train_config(None, {"init_from": "x.safetensors"})))
    with pytest.raises(ValueError, match="augment.room"):
        _check_resume_config(saved, as_yaml(load_train_config(None, {"augment": {"room": {"prob": 0.5}}})))
    # lists of sub-configs are compared item by item: an extra set saved before distill_weight existed resumes
    real = {"data": {"extra_train": [{"manifest": "real.jsonl", "share": 0.2}]}}
    with_real = as_yaml(load_train_config(None, real))
    old = yaml.safe_load(yaml.safe_dump(with_real))
    del old["data"]["extra_train"][0]["distill_weight"]
    _check_resume_config(old, with_real)
    changed = as_yaml(load_train_config(None, {"data": {"extra_train": [{"manifest": "real.jsonl", "share": 0.3}]}}))
    with pytest.raises(ValueError, match=r"data.extra_train\[0\].share: run has 0.2, now 0.3"):
        _check_resume_config(old, changed)

    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n1,2.0\n")  # a run started before the audio_s column
    _Metrics(path, ["step", "loss", "audio_s"]).write({"step": 2, "loss": "1.5", "audio_s": "9"})
    assert path.read_text().splitlines() == ["step,loss", "1,2.0", "2,1.5"]

"""asr.train.data with the waveform augmentation chain: seeded per batch, off means bit-identical to no chain."""

from __future__ import annotations

import json

import pytest
import torch

from asr.augment import WaveAugmenter, build_rir_bank
from asr.data.sources import load_utterances
from asr.features import FbankConfig, GlobalCMVN
from asr.text.tokenizers import build_tokenizer
from asr.train.config import AugmentConfig
from asr.train.data import TrainingData
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

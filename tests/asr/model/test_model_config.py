"""ModelConfig: validation names the offending field and value; dict/JSON round trips."""

from __future__ import annotations

import dataclasses
import json

import pytest

from asr.model import ModelConfig


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(d_model=250, num_heads=4), "d_model=250 is not divisible by num_heads=4"),
        (dict(num_layers=0), "num_layers must be an int >= 1"),
        (dict(input_dim=5), "input_dim must be an int >= 7"),
        (dict(vocab_size=1.5), "vocab_size must be an int"),
        (dict(attention="lsh"), "attention='lsh' is not one of"),
        (dict(feature_map="tanh"), "feature_map='tanh'"),
        (dict(decay="exp"), "decay='exp'"),
        (dict(output_norm="batch"), "output_norm='batch'"),
        (dict(backend="cuda"), "backend='cuda'"),
        (dict(dropout=1.0), "dropout must be in"),
        (dict(decay_init_min=0.0), "decay_init_min must be in"),
        (dict(decay_init_min=0.99, decay_init_max=0.9), "decay_init_min=0.99 must be <="),
        (dict(attention="softmax", decay="per_head"), "applies to linear attention only"),
        (dict(attention="softmax", feature_map="relu"), "applies to linear attention only"),
        (dict(attention_window=8), "applies to softmax attention only"),
        (dict(attention="softmax", attention_window=0), "attention_window must be an int >= 1"),
        (dict(attention="softmax", attention_window=8, causal=False), "needs causal=True"),
        (dict(causal=False, decay="gated"), "needs causal=True"),
        (dict(causal=False, conv_kernel_size=4), "must be odd"),
        (dict(causal="yes"), "causal must be a bool"),
    ],
)
def test_invalid_configs_raise_naming_the_value(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ModelConfig(**overrides)


def test_config_is_frozen() -> None:
    cfg = ModelConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_model = 512  # type: ignore[misc]


def test_dict_and_json_round_trip() -> None:
    cfg = ModelConfig(attention="softmax", attention_window=16, num_layers=3)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(ValueError, match=r"unknown model config keys \['heads'\]"):
        ModelConfig.from_dict({"heads": 4})


def test_initial_decays_span_the_configured_range() -> None:
    decays = ModelConfig(num_heads=4, decay_init_min=0.9, decay_init_max=0.999).initial_decays()
    assert decays[0] == pytest.approx(0.9) and decays[-1] == pytest.approx(0.999)
    assert decays == sorted(decays)
    assert ModelConfig(num_heads=1, d_model=64).initial_decays() == [pytest.approx(0.9)]

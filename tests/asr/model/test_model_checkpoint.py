"""Checkpoints: an exact round trip, atomic writes, and clear refusals of bad or mismatched files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from asr.model import CTCModel, load_checkpoint, save_checkpoint

from ._model_helpers import one_thread, tiny


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


TOKENIZER = {"kind": "chars", "units": ["<blank>", "a", "b", " "]}
CMVN = {"mean": torch.linspace(-1, 1, 20), "std": torch.linspace(0.5, 2, 20)}


def _saved(tmp_path: Path, **overrides) -> tuple[Path, CTCModel]:
    torch.manual_seed(0)
    cfg = tiny(**overrides)
    model = CTCModel(cfg).eval()
    path = save_checkpoint(
        tmp_path / "run" / "model.safetensors",
        model,
        cfg,
        tokenizer_dict=TOKENIZER,
        cmvn_tensors=CMVN,
        extra={"step": 17, "note": "test"},
    )
    return path, model


@pytest.mark.parametrize(
    "overrides",
    [
        dict(decay="gated", output_norm="rms"),
        dict(feature_map="positive_random"),
        dict(attention="softmax", causal=False),
    ],
    ids=["linear-gated", "linear-random", "softmax-noncausal"],
)
def test_round_trip_gives_identical_outputs(tmp_path: Path, overrides: dict) -> None:
    path, model = _saved(tmp_path, **overrides)
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temporary file left behind
    ckpt = load_checkpoint(path)
    assert ckpt.config == model.config
    assert ckpt.tokenizer == TOKENIZER and ckpt.extra == {"step": 17, "note": "test"}
    assert set(ckpt.cmvn) == set(CMVN) and all(torch.equal(ckpt.cmvn[k], CMVN[k]) for k in CMVN)
    assert not ckpt.model.training
    torch.manual_seed(1)
    feats = torch.randn(2, 40, 20)
    lengths = torch.tensor([40, 29])
    with torch.no_grad():
        a, _ = model(feats, lengths)
        b, _ = ckpt.model(feats, lengths)
    assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_weights_halve_the_file_and_load_into_float32(tmp_path: Path, dtype: str) -> None:
    """A shipped model may store its weights in 16 bits: the file is about half, the model that loads has float32
    parameters equal to the weights rounded once, and its outputs stay close to the float32 model's."""
    full, model = _saved(tmp_path / "full")
    cfg = model.config
    half = save_checkpoint(tmp_path / "half.safetensors", model, cfg, tokenizer_dict=TOKENIZER,
                           cmvn_tensors=CMVN, extra={"step": 17}, weights_dtype=dtype)  # fmt: skip
    assert half.stat().st_size < 0.6 * full.stat().st_size
    with safe_open(str(half), framework="pt") as f:
        assert f.metadata()["weights_dtype"] == dtype
        assert {str(f.get_tensor(k).dtype) for k in f.keys() if k.startswith("model/")} >= {f"torch.{dtype}"}
        assert f.get_tensor("cmvn/mean").dtype == torch.float32  # statistics are not rounded
    ckpt = load_checkpoint(half)
    for name, p in ckpt.model.state_dict().items():
        original = model.state_dict()[name]
        assert p.dtype == original.dtype
        if p.is_floating_point():
            assert torch.equal(p, original.to(getattr(torch, dtype)).to(original.dtype)), name
    assert torch.equal(ckpt.cmvn["mean"], CMVN["mean"])
    torch.manual_seed(1)
    feats = torch.randn(2, 40, 20)
    with torch.no_grad():
        a, _ = model(feats, torch.tensor([40, 29]))
        b, _ = ckpt.model(feats, torch.tensor([40, 29]))
    assert torch.allclose(a, b, atol=0.05), (a - b).abs().max()


def test_weights_that_overflow_float16_and_unknown_dtypes_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = tiny()
    model = CTCModel(cfg)
    with torch.no_grad():
        model.head.weight[0, 0] = 1e6  # beyond float16's 65504
    kwargs = dict(tokenizer_dict=TOKENIZER, cmvn_tensors=CMVN)
    with pytest.raises(ValueError, match="head.weight.*does not fit float16"):
        save_checkpoint(tmp_path / "a.safetensors", model, cfg, weights_dtype="float16", **kwargs)
    save_checkpoint(tmp_path / "b.safetensors", model, cfg, weights_dtype="bfloat16", **kwargs)  # float32 range
    with pytest.raises(ValueError, match="weights_dtype 'int8'"):
        save_checkpoint(tmp_path / "c.safetensors", model, cfg, weights_dtype="int8", **kwargs)
    assert not (tmp_path / "a.safetensors").exists() and not (tmp_path / "c.safetensors").exists()


def test_checkpoint_is_plain_safetensors_with_json_metadata(tmp_path: Path) -> None:
    path, model = _saved(tmp_path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert json.loads(meta["config"]) == model.config.to_dict()
    assert {k for k in keys if k.startswith("cmvn/")} == {"cmvn/mean", "cmvn/std"}
    assert {k.removeprefix("model/") for k in keys if k.startswith("model/")} == set(model.state_dict())


def test_overwrite_is_atomic_and_replaces_the_old_file(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    torch.manual_seed(9)
    cfg = tiny(num_layers=1)
    save_checkpoint(path, CTCModel(cfg), cfg, tokenizer_dict=TOKENIZER, cmvn_tensors={}, extra=None)
    ckpt = load_checkpoint(path)
    assert ckpt.config.num_layers == 1 and ckpt.cmvn == {} and ckpt.extra == {}
    assert len(list(path.parent.iterdir())) == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip_header", "empty"])
def test_corrupted_files_are_refused(tmp_path: Path, damage: str) -> None:
    path, _ = _saved(tmp_path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "flip_header":
        path.write_bytes(data[:8] + b"{{{{" + data[12:])
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError, match=str(path.name)):
        load_checkpoint(path)


def test_pickles_are_never_loaded(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


def _rewrite(
    path: Path, *, meta_update: dict | None = None, drop: str | None = None, resize: str | None = None
) -> None:
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta.update(meta_update or {})
    if drop:
        del tensors[drop]
    if resize:
        tensors[resize] = torch.zeros(tensors[resize].shape[0] + 1, *tensors[resize].shape[1:])
    save_file(tensors, str(path), metadata=meta)


def test_config_and_weight_mismatches_are_refused(tmp_path: Path) -> None:
    path, model = _saved(tmp_path)
    cfg = model.config.to_dict()

    _rewrite(path, meta_update={"config": json.dumps({**cfg, "d_model": 32})})
    with pytest.raises(ValueError, match="does not match its config"):
        load_checkpoint(path)

    path, _ = _saved(tmp_path)
    _rewrite(path, meta_update={"config": json.dumps({**cfg, "num_heads": 3})})
    with pytest.raises(ValueError, match="invalid model config.*num_heads"):
        load_checkpoint(path)

    path, _ = _saved(tmp_path)
    _rewrite(path, meta_update={"config": json.dumps({**cfg, "flux_capacitor": 1})})
    with pytest.raises(ValueError, match="unknown model config keys"):
        load_checkpoint(path)

    path, _ = _saved(tmp_path)
    _rewrite(path, drop="model/head.bias")
    with pytest.raises(ValueError, match="missing.*head.bias"):
        load_checkpoint(path)

    path, _ = _saved(tmp_path)
    _rewrite(path, resize="model/head.weight")
    with pytest.raises(ValueError, match="shape or dtype mismatches.*head.weight"):
        load_checkpoint(path)

    path, _ = _saved(tmp_path)
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    tensors["model/head.weight"] = tensors["model/head.weight"].to(torch.int32)  # integers where weights go
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ValueError, match="dtype mismatches.*head.weight: saved torch.int32 vs torch.float32"):
        load_checkpoint(path)

    path, _ = _saved(tmp_path)
    _rewrite(path, meta_update={"format": "something-else"})
    with pytest.raises(ValueError, match="format"):
        load_checkpoint(path)


def test_save_refuses_bad_arguments(tmp_path: Path) -> None:
    cfg = tiny()
    model = CTCModel(cfg)
    with pytest.raises(ValueError, match="does not match"):
        save_checkpoint(tmp_path / "m.safetensors", model, tiny(num_layers=1), tokenizer_dict={}, cmvn_tensors={})
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "m.safetensors", model, cfg, tokenizer_dict={"x": object()}, cmvn_tensors={})
    with pytest.raises(ValueError, match="cmvn_tensors"):
        save_checkpoint(tmp_path / "m.safetensors", model, cfg, tokenizer_dict={}, cmvn_tensors={"mean": [0.0]})
    assert list(tmp_path.iterdir()) == []

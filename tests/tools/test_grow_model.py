"""tools/grow_model.py: a deeper model with the same function (logits full-utterance and streamed, the old blocks'
weights at their new places, the new blocks' branch outputs zero), trainable (every new weight gets a gradient after
one step), written with the old tokenizer and CMVN, and the argument checks."""

from __future__ import annotations

import pytest
import torch

from asr.model import CTCModel, ModelConfig
from asr.pipeline import load_asr_model, save_asr_model
from tests.asr.streaming.conftest import make_bundle
from tests.tools import load_tool

tool = load_tool("grow_model")


def _model(num_layers: int = 3) -> CTCModel:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=9, input_dim=20, subsampling_channels=6, d_model=16, num_layers=num_layers,
                      num_heads=2, ff_dim=24, dropout=0.0, decay="per_head", output_norm="rms",
                      conv_kernel_size=5)  # fmt: skip
    return CTCModel(cfg).eval()


@pytest.mark.parametrize(("old", "new", "where", "expected"), [
    (8, 12, "spread", [0, 1, 3, 5, 6, 8, 10, 11]), (3, 5, "end", [0, 1, 2]), (3, 5, "spread", [0, 2, 4]),
    (2, 4, "spread", [0, 3]), (3, 4, "spread", [0, 1, 3]), (1, 3, "spread", [0]),
])  # fmt: skip
def test_positions_keep_the_old_order(old, new, where, expected):
    assert tool.positions(old, new, where) == expected


@pytest.mark.parametrize("where", ["spread", "end"])
def test_the_grown_model_computes_the_same_and_trains(where):
    model = _model(3)
    grown = tool.grow(model, 5, where=where)
    assert grown.config.num_layers == 5
    assert tool.check_same_function(model, grown) == 0.0
    kept = tool.positions(3, 5, where)
    for i, j in enumerate(kept):
        for (name, a), (_, b) in zip(model.encoder.blocks[i].state_dict().items(),
                                     grown.encoder.blocks[j].state_dict().items(), strict=True):  # fmt: skip
            assert torch.equal(a, b), name
    new = sorted(set(range(5)) - set(kept))
    for j in new:
        block = grown.encoder.blocks[j]
        for lin in (block.attention.out, block.conv.pointwise_out, block.ff.outer):
            assert not lin.weight.any() and not lin.bias.any()
        assert block.ff.inner.weight.any()  # the rest is a fresh initialisation
    # trainable: after one SGD step every weight of a new block has moved
    grown.train()
    opt = torch.optim.SGD(grown.parameters(), lr=0.1)
    for _ in range(2):
        feats = torch.randn(2, 64, 20)
        logits, lengths = grown(feats, torch.full((2,), 64))
        loss = torch.nn.functional.ctc_loss(logits.transpose(0, 1).log_softmax(-1), torch.randint(1, 9, (2, 5)),
                                            lengths, torch.full((2,), 5))  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
    before = tool.grow(model, 5, where=where).state_dict()
    after = grown.state_dict()
    moved = [k for k in after if k.startswith(f"encoder.blocks.{new[0]}.") and after[k].is_floating_point()
             and not torch.equal(after[k], before[k])]  # fmt: skip
    assert any(".ff.inner." in k for k in moved) and any(".attention.out." in k for k in moved)


def test_the_cli_writes_a_checkpoint_that_loads(tmp_path):
    path = save_asr_model(tmp_path / "tiny.safetensors", make_bundle())
    out = tmp_path / "grown.safetensors"
    assert tool.main([str(path), "--num-layers", "4", "--out", str(out)]) == 0
    old, new = load_asr_model(path), load_asr_model(out)
    assert new.model.config.num_layers == 4 and new.tokenizer.to_dict() == old.tokenizer.to_dict()
    assert new.extra["grown_from"] == str(path)
    assert torch.equal(new.cmvn.mean, old.cmvn.mean) and new.features == old.features
    tool.check_same_function(old.model.eval(), new.model.eval())
    with pytest.raises(SystemExit):
        tool.main([str(path), "--num-layers", str(old.model.config.num_layers), "--out", str(out)])
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / "missing.safetensors"), "--num-layers", "9", "--out", str(out)])

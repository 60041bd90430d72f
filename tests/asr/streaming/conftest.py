import pytest
import torch

from asr.features import FbankConfig, GlobalCMVN
from asr.model.config import ModelConfig
from asr.model.ctc import CTCModel
from asr.pipeline import AsrModel
from asr.text.chars import CharTokenizer


def make_bundle(**model_overrides) -> AsrModel:
    tok = CharTokenizer()
    cfg = dict(
        vocab_size=tok.vocab_size,
        d_model=32,
        num_layers=2,
        num_heads=2,
        ff_dim=64,
        subsampling_channels=8,
        conv_kernel_size=5,
        dropout=0.0,
        backend="auto",  # forward: chunked on CPU; step: the lean streaming form
    )
    cfg.update(model_overrides)
    torch.manual_seed(0)
    model = CTCModel(ModelConfig(**cfg)).eval()
    cmvn = GlobalCMVN(mean=torch.full((80,), 5.0), std=torch.full((80,), 3.0), count=1)
    return AsrModel(model=model, tokenizer=tok, cmvn=cmvn, features=FbankConfig())


@pytest.fixture
def bundle():
    return make_bundle()


@pytest.fixture
def audio():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000 * 3) / 16000
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t) * (torch.sin(2 * torch.pi * 1.5 * t) > 0)
    return (tone + 0.02 * torch.randn(t.shape, generator=g)).float()

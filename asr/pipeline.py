"""A recognizer bundle: the CTC model with everything it needs to turn samples into text.

``AsrModel`` = model + tokenizer + global CMVN + filterbank settings, saved together in one safetensors
checkpoint (never a pickle) and loaded with :func:`load_asr_model`. Offline decoding of whole utterances lives
here; the streaming recognizer (asr.streaming) uses the same pieces chunk by chunk.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from asr.decoding import Hypothesis, beam_search, greedy_search
from asr.features import FbankConfig, GlobalCMVN, compute_fbank
from asr.model.checkpoint import load_checkpoint, save_checkpoint
from asr.model.ctc import CTCModel
from asr.text.base import Tokenizer
from asr.text.tokenizers import tokenizer_from_dict

logger = logging.getLogger(__name__)


@dataclass
class AsrModel:
    model: CTCModel
    tokenizer: Tokenizer
    cmvn: GlobalCMVN
    features: FbankConfig
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> AsrModel:
        self.model.to(device)  # CMVN statistics follow the features' device in GlobalCMVN.apply
        return self

    def featurize(self, samples: torch.Tensor) -> torch.Tensor:
        """Samples [N] (16 kHz float) -> normalised features [T, n_mels]."""
        return self.cmvn.apply(compute_fbank(samples.to(self.device), self.features))

    @torch.inference_mode()
    def log_probs(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-utterance forward: feats [B, T, D], lengths [B] -> log_probs [B, T', V], out_lengths [B]."""
        self.model.eval()
        return self.model(feats.to(self.device), lengths.to(self.device))

    def decode(self, log_probs: torch.Tensor, *, beam: int = 1) -> Hypothesis:
        """One utterance's log_probs [T', V] -> best hypothesis (greedy for beam=1, else prefix beam search)."""
        lp = log_probs.float().cpu()
        if beam <= 1:
            return greedy_search(lp, blank=self.tokenizer.blank_id)
        return beam_search(lp, beam=beam, blank=self.tokenizer.blank_id)

    def transcribe(self, samples: torch.Tensor, *, beam: int = 1) -> tuple[str, Hypothesis]:
        feats = self.featurize(samples)
        lp, n = self.log_probs(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
        hyp = self.decode(lp[0, : int(n[0])], beam=beam)
        return self.tokenizer.decode(hyp.tokens), hyp

    @property
    def seconds_per_frame(self) -> float:
        """Seconds per model output frame (feature shift x subsampling)."""
        return self.features.frame_shift_ms / 1000.0 * self.model.subsampling_factor


def save_asr_model(path: str | os.PathLike, bundle: AsrModel, *, extra: dict[str, Any] | None = None) -> Path:
    info = dict(bundle.extra)
    info.update(extra or {})
    info["features"] = dataclasses.asdict(bundle.features)
    return save_checkpoint(
        path,
        bundle.model,
        bundle.model.config,
        tokenizer_dict=bundle.tokenizer.to_dict(),
        cmvn_tensors=bundle.cmvn.to_dict(prefix=""),
        extra=info,
    )


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` or None: CUDA when present, else the CPU; any other name as torch reads it. ValueError for a name
    torch does not know, and for CUDA (or a GPU index) this machine does not have."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {str(device)!r} (use cpu, cuda, cuda:N or auto): {exc}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ValueError(f"device {str(device)!r}: only cpu and cuda devices are supported")
    return dev


def load_asr_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> AsrModel:
    """Load a checkpoint written by :func:`save_asr_model` (safetensors only; no code is unpickled). ``device``:
    see :func:`resolve_device` (checked before the file is read)."""
    device = resolve_device(device)
    ckpt = load_checkpoint(path, device=device)
    extra = dict(ckpt.extra)
    feats = extra.pop("features", None)
    if feats is None:
        raise ValueError(f"checkpoint {path} has no front-end settings ('features' in its extra metadata)")
    try:
        features = FbankConfig(**feats)
    except TypeError as exc:
        raise ValueError(f"checkpoint {path}: bad front-end settings {feats} ({exc})") from exc
    bundle = AsrModel(
        model=ckpt.model.eval(),
        tokenizer=tokenizer_from_dict(ckpt.tokenizer),
        cmvn=GlobalCMVN.from_dict(ckpt.cmvn, prefix=""),
        features=features,
        extra=extra,
    )
    if bundle.tokenizer.vocab_size != bundle.model.config.vocab_size:
        raise ValueError(
            f"checkpoint {path}: tokenizer has {bundle.tokenizer.vocab_size} tokens but the model outputs "
            f"{bundle.model.config.vocab_size}"
        )
    return bundle

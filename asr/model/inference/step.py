"""``PackedStep``: the model's streaming step for inference, with the weights laid out once for it.

``CTCModel.step`` is the plain reference form: each module's ``step``, weights as trained. For one stream and a
160 ms chunk (4 encoder frames) its matmuls are a few hundred kilo-FLOPs each, and the step's cost is its
hundreds of small operations and the weights' trip through the cache. PackedStep runs the same maths on the
same :class:`EncoderState` in fewer, cheaper operations, each layer kind packed in its own module of this
package (subsampling, attention, conv, block: see their docstrings for what each does), through the same
encoder loop (``asr.model.encoder.encoder_step``) and the same input checks (``check_step_inputs``).

Kernels: ``kernel="auto"`` runs the C kernels on the CPU in float32 (``kernels.linear_attention.chunk_step``'s
C backend, ``kernels.conv``, and ``kernels.gemm`` for the few-row products of a few streams, all of a block in one
call of ``kernels.block`` for a step of a few rows unless ``fused=False``; compiled on first use by
``kernels.cbuild``), PyTorch ops elsewhere or, with a warning saying why, where they cannot be built;
``"c"`` insists (CKernelUnavailable otherwise); ``"torch"`` keeps PyTorch ops only (same results up to float
rounding).

Weights are copied at construction: a PackedStep is a snapshot for inference (build a new one after changing
the model). Outputs equal ``CTCModel.step``'s up to float rounding (tested: logits and every state tensor), and
both take and return the same EncoderState, so they can be swapped mid-stream. A model option the packed form
has no form for is a ValueError here, at pack time.
"""

from __future__ import annotations

import logging

import torch

from asr.model.ctc import CTCModel
from asr.model.encoder import EncoderState, check_step_inputs, encoder_step
from asr.model.inference._common import Linear, Norm, copied, layer_norm, transposed
from asr.model.inference.block import PackedBlock
from asr.model.inference.subsampling import PackedSubsampling
from kernels import block as block_kernel
from kernels import conv, gemm
from kernels.linear_attention import CKernelUnavailable, load_c

__all__ = ["STEP_KERNELS", "PackedStep"]

log = logging.getLogger(__name__)

STEP_KERNELS = ("auto", "c", "torch")


def _load_c_kernels() -> None:
    """Build (once per machine) and load the C kernels the CPU step uses; raises CKernelUnavailable."""
    load_c()
    conv.load()
    gemm.load()
    block_kernel.load()


def _resolve_kernel(kernel: str, device: torch.device) -> str:
    """The kernel the step runs: "c" (the C kernels, on the CPU in float32) or "torch"."""
    on_cpu = device.type == "cpu"
    if kernel == "torch":
        return "torch"
    if kernel == "c":
        if not on_cpu:
            raise ValueError(f"kernel='c' is the CPU kernel; this model is on {device} (use 'auto' or 'torch')")
        _load_c_kernels()  # raises CKernelUnavailable with the reason
        return "c"
    if not on_cpu:  # auto: the C kernels where they apply
        return "torch"
    try:
        _load_c_kernels()
    except CKernelUnavailable as e:
        log.warning(
            "the CPU C kernels are unavailable, stepping with PyTorch ops (same results, slower for many streams): %s",
            e,
        )
        return "torch"
    return "c"


class PackedStep:
    """``CTCModel.step`` for inference: ``log_probs, state = packed(feats_chunk, state)``.

    feats_chunk [B, 4n, input_dim] (n >= 1), state an EncoderState for B streams -> (log_probs [B, n, V]
    float32, new state). Runs without autograd (inference mode). The input state is not modified, unless
    ``donate=True``: then the caller gives it up (a batch stacked for this step, say), and the attention
    states S, z are updated in place and returned as the new state's: for a big batch that saves a fresh
    copy of the largest tensors of the step (the state is ~9 MB per layer for 256 streams of the bundled
    model): half the state update's time, 5-12% of the step's (measured at 64-256 streams).
    """

    def __init__(self, model: CTCModel, *, kernel: str = "auto", fused: bool = True) -> None:
        if not isinstance(model, CTCModel):
            raise ValueError(f"PackedStep packs a CTCModel, got {type(model).__name__}")
        if kernel not in STEP_KERNELS:
            raise ValueError(f"kernel must be one of {STEP_KERNELS}, got {kernel!r}")
        config = model.config
        if not config.causal:
            raise ValueError("a non-causal (bidirectional) model cannot stream (causal=False); use forward()")
        self.config = config
        encoder = model.encoder
        self.device = model.head.weight.device
        self.kernel = _resolve_kernel(kernel, self.device)
        self.subsampling = PackedSubsampling(encoder.subsampling, kernel=self.kernel)
        self.blocks = tuple(PackedBlock(block, kernel=self.kernel, fused=fused) for block in encoder.blocks)
        with torch.no_grad():
            self.final_norm = Norm.pack(encoder.final_norm)
            self.head = Linear(transposed(model.head.weight), copied(model.head.bias), kernel=self.kernel)
        self._template = encoder.step_template()  # shapes only: what check_step_inputs compares states with
        self._init_state = model.init_state

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> EncoderState:
        return self._init_state(batch_size, device if device is not None else self.device)

    @torch.inference_mode()
    def __call__(
        self, feats: torch.Tensor, state: EncoderState, *, donate: bool = False
    ) -> tuple[torch.Tensor, EncoderState]:
        factor = self.subsampling.factor
        check_step_inputs(
            feats, state, self._template, input_dim=self.config.input_dim, factor=factor, device=self.device
        )
        x, new_state = encoder_step(self.subsampling, self.blocks, feats, state, donate=donate)  # [B, C, d]
        b, c, d = x.shape
        logits = self.head(layer_norm(x.view(b * c, d), self.final_norm)).view(b, c, -1)
        return torch.log_softmax(logits.float(), dim=-1), new_state

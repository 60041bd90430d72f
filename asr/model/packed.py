"""``PackedStep``: the model's streaming step for inference, with the weights laid out once for it.

``CTCModel.step`` is the plain form: each module's ``step``, weights as trained. For one stream and a 160 ms
chunk (4 encoder frames) its matmuls are a few hundred kilo-FLOPs each, and the step's cost is its ~350
small operations (~1,750 ATen calls with views and nested calls) and the weights' trip through the cache.
PackedStep runs the same maths on the same :class:`EncoderState` in fewer, cheaper operations (~280; ~1,270
ATen calls) and 1.6-1.9x less time for one stream:

- every Linear weight is stored transposed ([in, out], contiguous), which MKL's small-M GEMM runs ~1.3x
  faster than the [out, in] parameter; the data-dependent decay's gate is folded into the qkv matmul, a
  per-head output norm's gains (and LayerNorm biases) into the out projection;
- a block keeps its activations as [rows, d_model] and adds each residual branch in place (``addmm_``);
- a constant per-head decay's factors for a chunk of C frames depend on the weights and C only: they are
  computed once per C (``kernels.linear_attention.chunk_gates``); the attention result is written straight
  into the [B, C, H, D] layout that the out projection reads;
- the subsampling's first conv is one matmul with its bias on a column of ones; for a big batch the second
  conv never concatenates the cached row with the chunk's (it adds that row's taps to its first frame);
  the projection's weight is permuted to read the second conv's channels-last output as is;
- on the CPU, in float32 (``kernel="auto"`` or ``"c"``), four parts run in small C kernels compiled on first
  use (``kernels.cbuild``): each linear attention layer's recurrence - feature map, read-out, decay,
  update, RMS output norm - in one pass over each stream's state, straight from the qkv matmul's output
  (``kernels.linear_attention.cpu_step``; the PyTorch ops sweep a big batch's state five times); the
  subsampling's conv1 + SiLU written into the buffer conv2 reads (``kernels.conv.conv1_silu``); the conv
  module's GLU written after its cached rows, then its depthwise conv + LayerNorm + SiLU in one pass
  (``kernels.conv``). ``kernel="torch"`` keeps PyTorch ops only (same results up to float rounding).

Weights are copied at construction (softmax layers and feature maps as module copies): a PackedStep is a
snapshot for inference (build a new one after changing the model). Outputs equal ``CTCModel.step``'s up to
float rounding (tested: logits and every state tensor), and both take and return the same EncoderState, so
they can be swapped mid-stream. Softmax attention layers (the baseline) step through (a copy of) their
module for the attention itself; the rest is packed as above.
"""

from __future__ import annotations

import copy
import logging
from typing import NamedTuple

import torch
import torch.nn.functional as F

from asr.model.attention import LinearAttention, SoftmaxAttention
from asr.model.blocks import BlockState, EncoderBlock
from asr.model.conv_module import ConvState, causal_depthwise_step
from asr.model.ctc import CTCModel
from asr.model.encoder import EncoderState
from asr.model.subsampling import _IM2COL_ROWS, SubsamplingState, conv2_step
from kernels import EluPlusOne, LinearAttentionState, ReLUFeatures, conv
from kernels.linear_attention import ChunkGates, CKernelUnavailable, chunk_gates, chunk_step, load_c

__all__ = ["STEP_KERNELS", "PackedStep"]

log = logging.getLogger(__name__)

STEP_KERNELS = ("auto", "c", "torch")


def _t(weight: torch.Tensor) -> torch.Tensor:
    """A Linear weight [out, in] -> a detached contiguous [in, out] copy."""
    return weight.detach().t().contiguous()


def _copy(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.detach().clone()


class _Norm(NamedTuple):
    weight: torch.Tensor  # [d]
    bias: torch.Tensor  # [d]
    eps: float


def _norm(module: torch.nn.LayerNorm) -> _Norm:
    return _Norm(_copy(module.weight), _copy(module.bias), float(module.eps))


class _Attention(NamedTuple):
    """A causal linear attention layer, packed."""

    qkv: torch.Tensor  # [d, 3d (+ H gate columns)]
    qkv_bias: torch.Tensor  # [3d (+ H)]
    out: torch.Tensor  # [d, d], the output norm's gains folded in
    out_bias: torch.Tensor  # [d], the output norm's biases folded in
    feature_map: str  # "elu+1", "relu" or "module" (call the layer's phi)
    decay: str  # "none", "per_head", "gated"
    head_gates: torch.Tensor | None  # [H] gates g_h in (0, 1] ("per_head")
    norm: str  # "none", "rms", "layer"
    norm_eps: float
    eps: float
    heads: int
    head_dim: int
    key_dim: int  # the feature map's output size (Dk of the state)
    random_features: bool  # q and k scaled by D^-1/4 before phi
    phi: torch.nn.Module  # a copy of the layer's feature map (used as is unless feature_map names a packed form)


class _Conv(NamedTuple):
    norm: _Norm
    inner: torch.Tensor  # [d, 2d]
    inner_bias: torch.Tensor  # [2d]
    depthwise: torch.Tensor  # [d, K]
    depthwise_taps: torch.Tensor  # [K, d] (the C kernel's layout)
    depthwise_bias: torch.Tensor  # [d]
    tail_norm: _Norm
    outer: torch.Tensor  # [d, d]
    outer_bias: torch.Tensor  # [d]


class _Block(NamedTuple):
    attention_norm: _Norm
    attention: _Attention | SoftmaxAttention  # a softmax layer steps through its module
    conv: _Conv | None
    ff_norm: _Norm
    ff_inner: torch.Tensor  # [d, ff]
    ff_inner_bias: torch.Tensor
    ff_outer: torch.Tensor  # [ff, d]
    ff_outer_bias: torch.Tensor


def _pack_attention(layer: LinearAttention) -> _Attention:
    d, heads, head_dim = layer.d_model, layer.heads, layer.head_dim
    qkv, qkv_bias = layer.qkv.weight.detach(), layer.qkv.bias.detach()
    if layer.decay_kind == "gated":  # the gate's logits as H more output columns of the same matmul
        qkv = torch.cat([qkv, layer.gate.weight.detach()])
        qkv_bias = torch.cat([qkv_bias, layer.gate.bias.detach()])
    out, out_bias = layer.out.weight.detach(), layer.out.bias.detach()  # [d, H * D], [d]
    norm, norm_eps = "none", 0.0
    if layer.norm is not None:  # y = n(o) * w + b per head -> out(y) = n(o) @ (w * W^T) + (W b + out_bias)
        norm, norm_eps = layer.norm.kind, float(layer.norm.eps)
        gain = layer.norm.weight.detach().reshape(-1)  # [H * D]
        if layer.norm.bias is not None:
            out_bias = out_bias + out @ layer.norm.bias.detach().reshape(-1)
        out = out * gain
    if isinstance(layer.phi, EluPlusOne):
        feature_map = "elu+1"
    elif isinstance(layer.phi, ReLUFeatures):
        feature_map = "relu"
    else:
        feature_map = "module"
    head_gates = torch.sigmoid(layer.decay_logit.detach().float()) if layer.decay_kind == "per_head" else None
    assert qkv.shape[0] in (3 * d, 3 * d + heads) and out.shape == (d, heads * head_dim)
    return _Attention(
        qkv=qkv.t().contiguous(),
        qkv_bias=qkv_bias.clone(),
        out=out.t().contiguous(),
        out_bias=out_bias.clone(),
        feature_map=feature_map,
        decay=layer.decay_kind,
        head_gates=head_gates,
        norm=norm,
        norm_eps=norm_eps,
        eps=layer.eps,
        heads=heads,
        head_dim=head_dim,
        key_dim=layer.key_dim,
        random_features=layer.random_features,
        phi=copy.deepcopy(layer.phi),
    )


def _pack_block(block: EncoderBlock) -> _Block:
    attention = block.attention
    conv = None
    if block.conv is not None:
        m = block.conv
        conv = _Conv(
            norm=_norm(block.norm_conv),
            inner=_t(m.pointwise_in.weight),
            inner_bias=_copy(m.pointwise_in.bias),
            depthwise=m.depthwise.weight.detach().squeeze(1).clone(),
            depthwise_taps=m.depthwise.weight.detach().squeeze(1).t().contiguous(),
            depthwise_bias=_copy(m.depthwise.bias),
            tail_norm=_norm(m.norm),
            outer=_t(m.pointwise_out.weight),
            outer_bias=_copy(m.pointwise_out.bias),
        )
    return _Block(
        attention_norm=_norm(block.norm_attention),
        # a softmax layer (the baseline) steps through a copy of its module
        attention=_pack_attention(attention) if isinstance(attention, LinearAttention) else copy.deepcopy(attention),
        conv=conv,
        ff_norm=_norm(block.norm_ff),
        ff_inner=_t(block.ff.inner.weight),
        ff_inner_bias=_copy(block.ff.inner.bias),
        ff_outer=_t(block.ff.outer.weight),
        ff_outer_bias=_copy(block.ff.outer.bias),
    )


def _load_c_kernels() -> None:
    """Build (once per machine) and load the C kernels the CPU step uses; raises CKernelUnavailable."""
    load_c()
    conv.load()


def _layer_norm(x: torch.Tensor, norm: _Norm) -> torch.Tensor:
    return F.layer_norm(x, norm.weight.shape, norm.weight, norm.bias, norm.eps)


class PackedStep:
    """``CTCModel.step`` for inference: ``log_probs, state = packed(feats_chunk, state)``.

    feats_chunk [B, 4n, input_dim] (n >= 1), state an EncoderState for B streams -> (log_probs [B, n, V]
    float32, new state). Runs without autograd (inference mode). The input state is not modified, unless
    ``donate=True``: then the caller gives it up (a batch stacked for this step, say), and the attention
    states S, z are updated in place and returned as the new state's: for a big batch that saves a fresh
    copy of the largest tensors of the step (the state is ~9 MB per layer for 256 streams of the bundled
    model): half the state update's time, 5-12% of the step's (measured at 64-256 streams).
    """

    def __init__(self, model: CTCModel, *, kernel: str = "auto") -> None:
        if not isinstance(model, CTCModel):
            raise ValueError(f"PackedStep packs a CTCModel, got {type(model).__name__}")
        if kernel not in STEP_KERNELS:
            raise ValueError(f"kernel must be one of {STEP_KERNELS}, got {kernel!r}")
        config = model.config
        if not config.causal:
            raise ValueError("a non-causal (bidirectional) model cannot stream (causal=False); use forward()")
        self.config = config
        encoder = model.encoder
        sub = encoder.subsampling
        self.channels, self.freq1, self.freq2 = sub.channels, sub.freq1, sub.freq2
        with torch.no_grad():
            # conv1 as a [rows, 9 taps + 1] x [10, C] matmul: the bias rides on a column of ones
            conv1 = sub.conv1.weight.detach().reshape(sub.channels, 9).t()  # [9, C]
            self.conv1 = torch.cat([conv1, sub.conv1.bias.detach()[None]]).contiguous()  # [10, C]
            self.conv1_taps, self.conv1_bias = conv1.contiguous(), _copy(sub.conv1.bias)  # the C kernel's
            # [C, C, 3, 3], channels-last as the activations it meets (else the conv converts it on every call)
            self.conv2 = sub.conv2.weight.detach().contiguous(memory_format=torch.channels_last)
            first_row = sub.conv2.weight.detach()[:, :, :1]  # [C, C, 1, 3]: the taps on the cached row
            self.conv2_first_row = first_row.contiguous(memory_format=torch.channels_last)
            self.conv2_mat = sub.conv2.weight.detach().reshape(sub.channels, -1).t().contiguous()  # [C * 9, C]
            self.conv2_bias = _copy(sub.conv2.bias)
            d = config.d_model
            # proj reads (channel, frequency) features; the step's conv2 output is (frequency, channel)
            proj = sub.proj.weight.detach().view(d, sub.channels, sub.freq2).transpose(1, 2).reshape(d, -1)
            self.proj, self.proj_bias = proj.t().contiguous(), _copy(sub.proj.bias)
            self.blocks = tuple(_pack_block(block) for block in encoder.blocks)
            self.final_norm = _norm(encoder.final_norm)
            self.head, self.head_bias = _t(model.head.weight), _copy(model.head.bias)
        self._model = model  # for init_state (zeros shaped by the config)
        self.kernel = self._resolve_kernel(kernel)
        self._gates: dict[tuple, ChunkGates] = {}  # (layer, C, device, dtype) -> a per-head decay's factors

    @property
    def device(self) -> torch.device:
        return self.proj.device

    def _resolve_kernel(self, kernel: str) -> str:
        """The kernel this step runs: "c" (the C kernels, on the CPU in float32) or "torch"."""
        on_cpu = self.device.type == "cpu"
        if kernel == "torch":
            return "torch"
        if kernel == "c":
            if not on_cpu:
                raise ValueError(
                    f"kernel='c' is the CPU kernel; this model is on {self.device} (use 'auto' or 'torch')"
                )
            _load_c_kernels()  # raises CKernelUnavailable with the reason
            return "c"
        if not on_cpu:  # auto: the C kernels where they apply
            return "torch"
        try:
            _load_c_kernels()
        except CKernelUnavailable as e:
            log.warning(
                "the CPU C kernels are unavailable, stepping with PyTorch ops (same results, slower for "
                "many streams): %s",
                e,
            )
            return "torch"
        return "c"

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> EncoderState:
        return self._model.init_state(batch_size, device if device is not None else self.device)

    # ------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def __call__(
        self, feats: torch.Tensor, state: EncoderState, *, donate: bool = False
    ) -> tuple[torch.Tensor, EncoderState]:
        self._check(feats, state)
        b, t, _ = feats.shape
        c = t // 4
        x, sub_state = self._subsample(feats, state.subsampling)  # [B * C, d]
        layers = []
        for i, (block, block_state) in enumerate(zip(self.blocks, state.layers, strict=True)):
            x, new_state = self._block(i, block, x, block_state, b, c, donate)
            layers.append(new_state)
        h = _layer_norm(x, self.final_norm)
        logits = torch.addmm(self.head_bias, h, self.head).view(b, c, -1)
        return torch.log_softmax(logits.float(), dim=-1), EncoderState(sub_state, tuple(layers))

    def _check(self, feats: torch.Tensor, state: EncoderState) -> None:
        cfg = self.config
        if not isinstance(feats, torch.Tensor) or feats.dim() != 3 or feats.shape[-1] != cfg.input_dim:
            shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            raise ValueError(f"features must be [B, T, {cfg.input_dim}], got {shape}")
        if not feats.is_floating_point():
            raise ValueError(f"features must be floating point, got {feats.dtype}")
        if feats.shape[1] == 0 or feats.shape[1] % 4:
            raise ValueError(
                f"a streaming chunk must hold a positive multiple of 4 feature frames, got {feats.shape[1]} "
                "(keep the remainder for the next chunk)"
            )
        if not isinstance(state, EncoderState) or len(state.layers) != len(self.blocks):
            raise ValueError(
                f"state must be an EncoderState with {len(self.blocks)} layer states, got {type(state).__name__}"
            )
        if state.subsampling.frames.shape[0] != feats.shape[0]:
            raise ValueError(
                f"chunk batch size {feats.shape[0]} does not match the state's {state.subsampling.frames.shape[0]}"
            )
        # a state of another model (or of an older layout) would fail deep inside; say so here (first layer only)
        expected = (1, self.freq1, self.channels)
        if tuple(state.subsampling.hidden.shape[1:]) != expected:
            raise ValueError(
                f"the state's subsampling cache is {tuple(state.subsampling.hidden.shape)}, expected [B, *{expected}]"
                " (a state made by another model?)"
            )
        first, attention = state.layers[0], self.blocks[0].attention
        if isinstance(attention, _Attention):
            want = (attention.heads, attention.key_dim, attention.head_dim)
            S = getattr(first.attention, "S", None)
            if S is None or tuple(S.shape[1:]) != want:
                got = tuple(S.shape) if S is not None else type(first.attention).__name__
                raise ValueError(f"the state's first attention state is {got}, expected S [B, *{want}]")
        if feats.device != self.device:
            raise ValueError(f"features are on {feats.device} but the model is on {self.device}")

    def _subsample(self, x: torch.Tensor, state: SubsamplingState) -> tuple[torch.Tensor, SubsamplingState]:
        b, t, f = x.shape
        n = t // 4
        x = x.to(self.proj.dtype)
        frames = torch.cat([state.frames.reshape(b, 1, f), x], dim=1)  # [B, 1 + 4n, F]
        if self.kernel == "c" and x.dtype == torch.float32:
            # conv1 + SiLU in C, written after the cached row of the buffer conv2 reads: no copy of either
            h1 = torch.empty(b, 1 + 2 * n, self.freq1, self.channels, dtype=x.dtype, device=x.device)
            h1[:, :1] = state.hidden
            conv.conv1_silu(frames, self.conv1_taps, self.conv1_bias, h1[:, 1:])
            h2 = F.silu(conv2_step(h1, self.conv2, self.conv2_bias, self.conv2_mat), inplace=True)  # [B, n, F2, C]
            y = torch.addmm(self.proj_bias, h2.reshape(b * n, -1), self.proj)  # [B * n, d]
            return y, SubsamplingState(frames=frames[:, -1:].unsqueeze(1), hidden=h1[:, -1:])
        windows = torch.empty(b * 2 * n * self.freq1, 10, dtype=x.dtype, device=x.device)  # 3x3 taps, 1
        windows[:, 9] = 1.0
        windows[:, :9].view(b, 2 * n, self.freq1, 3, 3).copy_(frames.unfold(1, 3, 2).unfold(2, 3, 2))
        h1 = F.silu(torch.mm(windows, self.conv1), inplace=True).view(b, 2 * n, self.freq1, self.channels)
        if b * n <= _IM2COL_ROWS:  # the cached row and the chunk's rows in one tensor, conv2 as a matmul
            full = torch.cat([state.hidden, h1], dim=1)  # [B, 1 + 2n, F1, C]
            h2 = conv2_step(full, self.conv2, self.conv2_bias, self.conv2_mat)  # [B, n, F2, C]
        else:  # a big batch: conv2 (oneDNN, channels-last) on the chunk's rows with a zero row in front, and
            # the cached row's taps added to the first output frame, so the big rows are never copied
            h2 = F.conv2d(h1.permute(0, 3, 1, 2), self.conv2, self.conv2_bias, stride=2, padding=(1, 0))
            first = F.conv2d(state.hidden.permute(0, 3, 1, 2), self.conv2_first_row, None, stride=(1, 2))
            h2[:, :, :1].add_(first)  # [B, C, n, F2]
            h2 = h2.permute(0, 2, 3, 1)  # [B, n, F2, C]
        h2 = F.silu(h2, inplace=True)
        y = torch.addmm(self.proj_bias, h2.reshape(b * n, -1), self.proj)  # [B * n, d]
        return y, SubsamplingState(frames=frames[:, -1:].unsqueeze(1), hidden=h1[:, -1:])

    def _block(
        self, index: int, block: _Block, x: torch.Tensor, state: BlockState, b: int, c: int, donate: bool
    ) -> tuple[torch.Tensor, BlockState]:
        """x: [B * C, d] (owned: updated in place) -> (x, new block state)."""
        h = _layer_norm(x, block.attention_norm)
        if isinstance(block.attention, SoftmaxAttention):
            a, attention_state = block.attention.step(h.view(b, c, -1), state.attention)
            x.add_(a.reshape(b * c, -1))
        else:
            attention_state = self._linear_attention(index, block.attention, h, x, state.attention, b, c, donate)
        conv_state = None
        if block.conv is not None:
            conv_state = self._conv(block.conv, x, state.conv, b, c)
        h = F.silu(torch.addmm(block.ff_inner_bias, _layer_norm(x, block.ff_norm), block.ff_inner), inplace=True)
        x.addmm_(h, block.ff_outer).add_(block.ff_outer_bias)
        return x, BlockState(attention_state, conv_state)

    def _linear_attention(
        self,
        index: int,
        p: _Attention,
        h: torch.Tensor,
        x: torch.Tensor,
        state: LinearAttentionState,
        b: int,
        c: int,
        donate: bool,
    ) -> LinearAttentionState:
        """Adds the attention branch of normed input h [B * C, d] to x in place; returns the new state."""
        heads, dim = p.heads, p.head_dim
        d = heads * dim
        qkv = torch.addmm(p.qkv_bias, h, p.qkv)  # [B * C, 3d (+ H)]
        sdtype = torch.float64 if torch.float64 in (qkv.dtype, state.S.dtype) else torch.float32
        fused = self.kernel == "c" and sdtype == torch.float32  # the C kernel: float32 on the CPU
        qkv3 = qkv[:, : 3 * d].view(b, c, 3, heads, dim).permute(2, 0, 3, 1, 4)  # [3, B, H, C, D] view
        if p.feature_map == "module":
            q, k, v = qkv3.to(sdtype).unbind(0)
            if p.random_features:
                scale = dim**-0.25
                q, k = q * scale, k * scale
            q, k = p.phi(q, is_query=True).contiguous(), p.phi(k).contiguous()
            v = v.contiguous()
        elif fused:  # the kernel reads q, k, v where the matmul wrote them and applies phi itself
            q, k, v = qkv3.unbind(0)  # strided [B, H, C, D] views of qkv
        else:
            qkv3 = (qkv3 if qkv3.dtype == sdtype else qkv3.to(sdtype)).contiguous()  # one copy: the kernel's layout
            q, k, v = qkv3.unbind(0)  # each [B, H, C, D] contiguous
        log_g = None
        if p.decay == "gated":
            log_g = F.logsigmoid(qkv[:, 3 * d :].float()).to(sdtype)  # float32 gates, as the module's
            log_g = log_g.view(b, c, heads).transpose(1, 2)  # [B, H, C]
        state = LinearAttentionState(state.S.to(sdtype), state.z.to(sdtype))
        inplace = donate and state.S.is_contiguous() and state.z.is_contiguous()  # a donated state: in place
        rms_eps = p.norm_eps if p.norm == "rms" else None  # the step applies the RMS norm too (gains folded)
        o = torch.empty(b, c, heads, dim, dtype=sdtype, device=x.device)  # [B, C, H, D]
        piece = self.config.chunk_size
        if p.decay == "per_head" and c <= piece:  # a constant decay's factors: once per chunk length
            key = (index, c, x.device, sdtype)
            decay = self._gates.get(key)
            if decay is None:
                log_h = torch.log(p.head_gates.to(device=x.device, dtype=sdtype)).view(1, heads, 1)
                decay = self._gates[key] = ChunkGates(*(g.contiguous() for g in chunk_gates(log_h.expand(1, heads, c))))
        elif p.decay == "per_head":
            decay = torch.log(p.head_gates.to(device=x.device, dtype=sdtype)).view(1, heads, 1).expand(1, heads, c)
        else:
            decay = log_g
        phi = None if p.feature_map == "module" else p.feature_map
        # a long chunk goes in pieces of the kernel's chunk size (memory O(C chunk_size), as the module step)
        _, state = chunk_step(
            q, k, v, state, decay=decay, eps=p.eps, out=o.transpose(1, 2), inplace=inplace, feature_map=phi,
            rms_eps=rms_eps, chunk_size=piece, backend="c" if fused else "torch",
        )  # fmt: skip
        if p.norm == "layer":
            o = F.layer_norm(o, (dim,), eps=p.norm_eps)
        x.addmm_(o.view(b * c, d).to(x.dtype), p.out).add_(p.out_bias)
        return state

    def _conv(self, p: _Conv, x: torch.Tensor, state: ConvState, b: int, c: int) -> ConvState:
        """Adds the conv module branch to x [B * C, d] in place; returns the new cache."""
        if self.kernel == "c" and x.dtype == torch.float32:
            # the gate written after the cached rows, then the depthwise conv, its LayerNorm and SiLU in one pass
            cached = state.cache.shape[1]
            full = torch.empty(b, cached + c, x.shape[1], dtype=x.dtype, device=x.device)  # [B, K - 1 + C, d]
            full[:, :cached] = state.cache
            conv.bias_glu(torch.mm(_layer_norm(x, p.norm), p.inner), p.inner_bias, full[:, cached:])
            tail = p.tail_norm
            y = conv.dwconv_ln_silu(full, p.depthwise_taps, p.depthwise_bias, tail.weight, tail.bias, tail.eps)
        else:
            h = F.glu(torch.addmm(p.inner_bias, _layer_norm(x, p.norm), p.inner), dim=-1)  # [B * C, d]
            full = torch.cat([state.cache, h.view(b, c, -1)], dim=1)  # [B, K - 1 + C, d]
            y = causal_depthwise_step(full, p.depthwise, p.depthwise_bias).reshape(b * c, -1)
            y = F.silu(_layer_norm(y, p.tail_norm), inplace=True)
        x.addmm_(y, p.outer).add_(p.outer_bias)
        return ConvState(full[:, c:])

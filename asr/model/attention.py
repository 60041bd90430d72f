"""Multi-head attention layers: causal linear attention (the product) and softmax attention (the baseline).

Both take x [B, T, d_model] and return [B, T, d_model]; heads use the kernel layout [B, T, H, D].

Linear (Katharopoulos et al. 2020): out_t = phi(q_t) . S_t / (phi(q_t) . z_t + eps), computed by
``kernels.causal_linear_attention`` in forward and, with the carried LinearAttentionState(S, z), in step: the
same projection, feature map, decay and norm as forward (step is the plain reference form; the fast inference
form is asr.model.inference); with ``backend="auto"`` step calls the kernels' lean streaming form
``causal_linear_attention_step`` (no dispatch), with a named backend it calls that backend.
Options: feature map (``kernels.get_feature_map``: elu+1, relu, positive random features), per-head or
data-dependent decay, per-head output norm. Non-causal (offline) form: ``kernels.noncausal_linear_attention``,
one global S, z per utterance over the valid (unpadded) keys.

Softmax: scaled dot product attention, causal mask (optionally a window of W frames) or, non-causal, a key
padding mask. No positional encoding: order comes from the causal mask, the causal subsampling and the
conv module. Streaming state is a KV cache (SoftmaxAttentionState) that grows, or holds W - 1 frames.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from asr.model.config import ModelConfig
from kernels import LinearAttentionState, causal_linear_attention, get_feature_map, noncausal_linear_attention
from kernels.linear_attention import causal_linear_attention_step

__all__ = ["LinearAttention", "LinearAttentionState", "SoftmaxAttention", "SoftmaxAttentionState"]


class _HeadNorm(nn.Module):
    """RMSNorm or LayerNorm over each head's channels of [B, T, H, D], with per-head per-channel gains."""

    def __init__(self, kind: str, heads: int, head_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.kind = kind
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(heads, head_dim))
        self.bias = nn.Parameter(torch.zeros(heads, head_dim)) if kind == "layer" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x if x.dtype == torch.float32 else x.float()  # (no dispatch for the common case: a streaming hot path)
        if self.kind == "rms":
            y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        else:
            y = F.layer_norm(xf, xf.shape[-1:], eps=self.eps) * self.weight + self.bias
        return y if y.dtype == x.dtype else y.to(x.dtype)


def _check_chunk(x: torch.Tensor, d_model: int) -> None:
    if x.dim() != 3 or x.shape[-1] != d_model or x.shape[1] == 0:
        raise ValueError(f"expected a chunk [B, T >= 1, {d_model}], got shape {tuple(x.shape)}")


class LinearAttention(nn.Module):
    """Multi-head linear attention; causal (streamable) or non-causal (offline)."""

    def __init__(self, config: ModelConfig, *, layer_index: int = 0) -> None:
        super().__init__()
        self.d_model = config.d_model
        self.heads = config.num_heads
        self.head_dim = config.head_dim
        self.causal = config.causal
        self.decay_kind = config.decay
        self.eps = float(config.attention_eps)
        self.backend = config.backend
        self.chunk_size = config.chunk_size
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        # Random features are drawn once from a per-layer seed and stored as a buffer (saved in checkpoints);
        # q and k are scaled by D^-1/4 first, as softmax attention would scale q.k by D^-1/2.
        self.random_features = config.feature_map == "positive_random"
        self.phi = get_feature_map(
            config.feature_map, dim=self.head_dim, num_features=config.num_random_features, seed=layer_index
        )
        self.key_dim = self.phi.out_dim(self.head_dim)
        init = torch.tensor(config.initial_decays())
        logit = torch.log(init) - torch.log1p(-init)  # sigmoid^-1
        if config.decay == "per_head":
            self.decay_logit = nn.Parameter(logit)  # [H]; g_h = sigmoid(decay_logit)
        elif config.decay == "gated":
            self.gate = nn.Linear(config.d_model, self.heads)  # log g_t = logsigmoid(x W_g + b_g)
            with torch.no_grad():
                self.gate.bias.copy_(logit)
        self.norm = _HeadNorm(config.output_norm, self.heads, self.head_dim) if config.output_norm != "none" else None

    # ------------------------------------------------------------------------------------------
    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).unbind(2)  # each [B, T, H, D]
        if self.random_features:
            scale = self.head_dim**-0.25
            q, k = q * scale, k * scale
        return self.phi(q, is_query=True), self.phi(k), v  # [B, T, H, Dk], [B, T, H, Dk], [B, T, H, D]

    def _decay(self, x: torch.Tensor) -> torch.Tensor | None:
        if self.decay_kind == "per_head":
            return torch.sigmoid(self.decay_logit.float())  # [H] in (0, 1)
        if self.decay_kind == "gated":
            return F.logsigmoid(self.gate(x).float())  # [B, T, H] log-gates <= 0
        return None

    def _finish(self, o: torch.Tensor) -> torch.Tensor:
        # o: [B, T, H, D] -> [B, T, d_model]
        if self.norm is not None:
            o = self.norm(o)
        return self.out(o.flatten(2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, T, d_model]; mask: [B, T] bool, True on valid frames (used by the non-causal form only:
        the causal form never lets a later, padded frame reach a valid one)."""
        q, k, v = self._project(x)
        if self.causal:
            o, _ = causal_linear_attention(
                q, k, v, decay=self._decay(x), backend=self.backend, chunk_size=self.chunk_size, eps=self.eps
            )
        else:
            padding = None if mask is None else ~mask
            o = noncausal_linear_attention(q, k, v, key_padding_mask=padding, eps=self.eps)
        return self._finish(o)

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> LinearAttentionState:
        if not self.causal:
            raise ValueError("a non-causal attention layer has no streaming state (set causal=True to stream)")
        return LinearAttentionState.zeros(batch_size, self.heads, self.key_dim, self.head_dim, device=device)

    def step(self, x: torch.Tensor, state: LinearAttentionState) -> tuple[torch.Tensor, LinearAttentionState]:
        """x: [B, T, d_model] chunk, state from init_state or the previous step -> (y, new state)."""
        if not self.causal:
            raise ValueError("a non-causal attention layer cannot step (set causal=True to stream)")
        _check_chunk(x, self.d_model)
        q, k, v = self._project(x)
        if self.backend == "auto":
            o, new_state = causal_linear_attention_step(
                q, k, v, state, decay=self._decay(x), eps=self.eps, chunk_size=self.chunk_size
            )
        else:
            o, new_state = causal_linear_attention(
                q,
                k,
                v,
                initial_state=state,
                decay=self._decay(x),
                backend=self.backend,
                chunk_size=self.chunk_size,
                eps=self.eps,
            )
        return self._finish(o), new_state

    def flops_per_frame(self) -> float:
        """Multiply-adds x 2 per encoder frame (the recurrent form's count)."""
        d, h, dk, dv = self.d_model, self.heads, self.key_dim, self.head_dim
        macs = 4 * d * d  # q, k, v, out projections
        macs += h * (2 * dk * dv + 2 * dk)  # S, z update and the q.S, q.z read-out
        if self.random_features:
            macs += 2 * h * dk * self.head_dim  # the random projections of q and k
        if self.decay_kind == "gated":
            macs += d * h
        return 2.0 * macs


class SoftmaxAttentionState(NamedTuple):
    """KV cache of the most recent encoder frames, right-aligned; ``valid`` marks real (not padding) slots.

    Streams stacked into one batch may have different history lengths: shorter caches are padded on the left
    with invalid slots. Valid slots of one stream are always the last ``valid[b].sum()`` ones.
    """

    k: torch.Tensor  # [B, H, L, D]
    v: torch.Tensor  # [B, H, L, D]
    valid: torch.Tensor  # [B, L] bool

    @staticmethod
    def stack_batch(items: list[SoftmaxAttentionState]) -> SoftmaxAttentionState:
        """Streams' caches in one batch (``asr.model.state.stack_tree``): shorter ones left-padded."""
        length = max(s.k.shape[2] for s in items)
        shapes = {(s.k.shape[1], s.k.shape[3]) for s in items}
        if len(shapes) != 1:
            raise ValueError(f"cannot stack KV caches with different (heads, head_dim) {sorted(shapes)}")

        def pad(s: SoftmaxAttentionState) -> SoftmaxAttentionState:
            extra = length - s.k.shape[2]
            if extra == 0:
                return s
            return SoftmaxAttentionState(
                F.pad(s.k, (0, 0, extra, 0)), F.pad(s.v, (0, 0, extra, 0)), F.pad(s.valid, (extra, 0))
            )

        padded = [pad(s) for s in items]
        return SoftmaxAttentionState(*(torch.cat([getattr(s, f) for s in padded]) for f in ("k", "v", "valid")))

    def select_row(self, b: int) -> SoftmaxAttentionState:
        """Row ``b`` as a batch-1 cache of its valid slots (copies; ``asr.model.state.select_tree``)."""
        keep = int(self.valid[b].sum())
        start = self.k.shape[2] - keep
        return SoftmaxAttentionState(
            self.k[b : b + 1, :, start:].clone(),
            self.v[b : b + 1, :, start:].clone(),
            self.valid[b : b + 1, start:].clone(),
        )


class SoftmaxAttention(nn.Module):
    """Multi-head softmax attention (SDPA); causal with an optional window, or non-causal."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.d_model = config.d_model
        self.heads = config.num_heads
        self.head_dim = config.head_dim
        self.causal = config.causal
        self.window = config.attention_window
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return q, k, v  # each [B, H, T, D]

    def _finish(self, o: torch.Tensor) -> torch.Tensor:
        # o: [B, H, T, D] -> [B, T, d_model]
        return self.out(o.transpose(1, 2).flatten(2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, T, d_model]; mask: [B, T] bool, True on valid frames (non-causal form only)."""
        q, k, v = self._project(x)
        t = x.shape[1]
        if self.causal and self.window is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif self.causal:
            pos = torch.arange(t, device=x.device)
            rel = pos[:, None] - pos[None, :]  # query - key
            allowed = (rel >= 0) & (rel < self.window)  # [T, T]
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        else:
            attn_mask = None
            if mask is not None:
                keys = mask.clone()
                keys[:, 0] = True  # an all-padding row (length 0) would give NaN; its outputs are unused
                attn_mask = keys[:, None, None, :]  # [B, 1, 1, T]
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self._finish(o)

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> SoftmaxAttentionState:
        if not self.causal:
            raise ValueError("a non-causal attention layer has no streaming state (set causal=True to stream)")
        dtype = self.qkv.weight.dtype
        empty = torch.zeros(batch_size, self.heads, 0, self.head_dim, device=device, dtype=dtype)
        return SoftmaxAttentionState(empty, empty.clone(), torch.zeros(batch_size, 0, dtype=torch.bool, device=device))

    def step(self, x: torch.Tensor, state: SoftmaxAttentionState) -> tuple[torch.Tensor, SoftmaxAttentionState]:
        """x: [B, C, d_model] chunk -> (y, state with the chunk's keys and values appended)."""
        if not self.causal:
            raise ValueError("a non-causal attention layer cannot step (set causal=True to stream)")
        _check_chunk(x, self.d_model)
        q, k, v = self._project(x)
        b, c = x.shape[0], x.shape[1]
        past = state.k.shape[2]
        keys = torch.cat([state.k, k], dim=2)  # [B, H, L + C, D]
        values = torch.cat([state.v, v], dim=2)
        valid = torch.cat([state.valid, torch.ones(b, c, dtype=torch.bool, device=x.device)], dim=1)
        qpos = torch.arange(c, device=x.device)
        kpos = torch.arange(past + c, device=x.device) - past  # cache slots sit just before the chunk
        rel = qpos[:, None] - kpos[None, :]  # [C, L + C]
        allowed = rel >= 0
        if self.window is not None:
            allowed = allowed & (rel < self.window)
        attn_mask = allowed[None, None] & valid[:, None, None, :]  # [B, 1, C, L + C]
        o = F.scaled_dot_product_attention(q, keys, values, attn_mask=attn_mask)
        if self.window is not None:
            start = max(0, keys.shape[2] - (self.window - 1))  # the next query reaches back W - 1 frames
            keys, values, valid = keys[:, :, start:], values[:, :, start:], valid[:, start:]
        return self._finish(o), SoftmaxAttentionState(keys, values, valid)

    def flops_per_frame(self, context_frames: float) -> float:
        """Multiply-adds x 2 per encoder frame attending to ``context_frames`` keys (capped by the window)."""
        ctx = context_frames if self.window is None else min(context_frames, self.window)
        macs = 4 * self.d_model * self.d_model + 2 * self.heads * self.head_dim * ctx
        return 2.0 * macs

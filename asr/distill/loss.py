"""Frame-level distillation: the teacher's posteriors put on the student's frames, and the KL term.

Putting 20 ms teacher frames on a student's 40 ms frames (:func:`student_targets`): student frame ``j`` covers
``[j, j + 1) * frame_seconds`` of the audio it heard, which speed perturbation by ``f`` made from
``[j, j + 1) * frame_seconds * f`` of the original audio the teacher heard. The teacher frames in that window
(at least one) are pooled the CTC way: the non-blank probabilities are *summed* (a phone's spike in any of them is
a spike of the student frame; if they add up to more than one they are scaled to one) and blank takes the rest.
Averaging would halve every spike, which a CTC student cannot match.

A causal student emits a phone later than a bidirectional teacher: ``delay_frames`` shifts the targets later
(student frame ``j`` learns the teacher's frame ``j - delay``; the first ``delay`` frames have no target). The
delay that fits a trained student is measured by ``tools/teacher_posteriors.py --measure-delay``.

The loss (:func:`distill_loss`): KL(teacher || student) summed over the frames that have a target, per utterance,
averaged over the batch (the CTC loss's scaling), so that ``weight * distill + ctc`` weighs both per utterance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["distill_loss", "student_targets", "utterance_kls"]


def student_targets(
    teacher_log_probs: np.ndarray,
    n_frames: int,
    *,
    frame_seconds: float,
    teacher_frame_seconds: float,
    speed: float = 1.0,
    delay_frames: int = 0,
    blank: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(targets [n_frames, V] probabilities, mask [n_frames] bool)`` for one utterance (module docstring)."""
    if delay_frames < 0:
        raise ValueError(f"delay_frames must be >= 0, got {delay_frames}")
    probs = np.exp(np.asarray(teacher_log_probs, dtype=np.float64))
    t_frames, vocab = probs.shape
    out = np.zeros((n_frames, vocab))
    mask = np.zeros(n_frames, dtype=bool)
    if t_frames == 0 or n_frames == 0:
        return out.astype(np.float32), mask
    nonblank = probs.copy()
    nonblank[:, blank] = 0.0
    cum = np.vstack([np.zeros((1, vocab)), np.cumsum(nonblank, axis=0)])
    scale = frame_seconds * speed / teacher_frame_seconds  # teacher frames per student frame
    j = np.arange(n_frames - delay_frames)  # the source frame of student frame j + delay
    lo = np.floor(j * scale + 1e-9).astype(np.int64)
    hi = np.maximum(lo + 1, np.floor((j + 1) * scale + 1e-9).astype(np.int64))
    valid = lo < t_frames
    lo, hi = lo[valid], np.minimum(hi[valid], t_frames)
    pooled = cum[hi] - cum[lo]
    total = pooled.sum(axis=1, keepdims=True)
    pooled = np.where(total > 1.0, pooled / np.maximum(total, 1e-12), pooled)
    pooled[:, blank] = np.clip(1.0 - pooled.sum(axis=1), 0.0, 1.0)
    rows = j[valid] + delay_frames
    out[rows] = pooled
    mask[rows] = True
    return out.astype(np.float32), mask


def utterance_kls(
    log_probs: torch.Tensor, targets: Sequence[tuple[np.ndarray, np.ndarray] | None]
) -> tuple[torch.Tensor, int]:
    """``(kls, frames)``: per utterance, KL(target || student) summed over its frames that have a target (``[B]``;
    0 for an utterance without a teacher); ``log_probs`` ``[B, T, V]`` the student's log-posteriors, ``targets[b]``
    from :func:`student_targets` (for ``n_frames`` <= T) or None. ``frames``: how many frames had a target."""
    kls = [log_probs.new_zeros((), dtype=torch.float32)] * len(targets)
    frames = 0
    for b, item in enumerate(targets):
        if item is None:
            continue
        probs, mask = item
        idx = torch.from_numpy(np.flatnonzero(mask)).to(log_probs.device)
        if idx.numel() == 0:
            continue
        t = torch.from_numpy(probs).to(log_probs.device)[idx]
        kls[b] = (torch.xlogy(t, t) - t * log_probs[b, idx].float()).sum()
        frames += int(idx.numel())
    return (torch.stack(kls) if kls else log_probs.new_zeros(0)), frames


def distill_loss(
    log_probs: torch.Tensor,
    targets: Sequence[tuple[np.ndarray, np.ndarray] | None],
    weights: Sequence[float] | None = None,
) -> tuple[torch.Tensor, int]:
    """``(loss, frames)``: the utterances' KLs (:func:`utterance_kls`), each times ``weights[b]`` (None: 1), summed
    and divided by the batch size. ``frames``: how many frames had a target (weight 0 or not)."""
    kls, frames = utterance_kls(log_probs, targets)
    if weights is not None:
        kls = kls * torch.tensor(list(weights), dtype=kls.dtype, device=kls.device)
    return kls.sum() / max(len(targets), 1), frames

"""CTC decoders over log-probabilities [T, V] (blank id 0 by default).

Both decoders are written as pure, incremental steps over chunks of frames with an explicit state, so decoding a
whole utterance is "one step over all frames": the streaming recognizer and batch evaluation use the same code.

A hypothesis carries token ids, the frame index where each token was first emitted (for timestamps), and a
per-token confidence (the posterior of the emitting frame for greedy; for beam search the frame posterior of the
token at its first frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Word:
    """A word of a word-level (lexicon) decoder's hypothesis, with its place in the audio."""

    text: str
    start: int  # frame of its first token's first frame
    end: int  # frame after its last token's first frame
    confidence: float  # mean posterior of its tokens, each at its first frame


@dataclass(frozen=True)
class Hypothesis:
    tokens: tuple[int, ...] = ()
    frames: tuple[int, ...] = ()  # frame index (model frame rate) of each token's first frame
    confidences: tuple[float, ...] = ()  # posterior probability of each token at that frame
    score: float = 0.0  # log-probability of the hypothesis (beam) or sum of best-path log-probs (greedy)
    words: tuple[Word, ...] | None = None  # lexicon decoders: the recognised words (the text is made of these)

    def text(self, tokenizer) -> str:
        """The transcript: the words of a lexicon decoder, else the tokenizer's decoding of the tokens."""
        if self.words is not None:
            return " ".join(w.text for w in self.words)
        return tokenizer.decode(self.tokens)


@dataclass(frozen=True)
class GreedyState:
    """Best-path decoding state: the hypothesis so far, the previous frame's argmax and the next frame index."""

    hyp: Hypothesis = Hypothesis()
    prev: int = -1
    frame: int = 0


def _check_log_probs(log_probs: torch.Tensor) -> None:
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be [T, V], got shape {tuple(log_probs.shape)}")


def greedy_step(log_probs: torch.Tensor, state: GreedyState, *, blank: int = 0) -> GreedyState:
    """Consume frames [T, V] and return the new state (the input state is not modified)."""
    _check_log_probs(log_probs)
    if log_probs.shape[0] == 0:
        return state
    best_lp, best = log_probs.float().max(dim=-1)
    return greedy_advance(best.tolist(), best_lp.tolist(), state, blank=blank)


def greedy_advance(best: list[int], best_lp: list[float], state: GreedyState, *, blank: int = 0) -> GreedyState:
    """``greedy_step`` from each frame's best label and its log-probability (a batch's argmax taken once)."""
    if len(best) != len(best_lp):
        raise ValueError(f"got {len(best)} labels and {len(best_lp)} log-probabilities")
    tokens, frames, confs = list(state.hyp.tokens), list(state.hyp.frames), list(state.hyp.confidences)
    prev = state.prev
    score = state.hyp.score
    for i, (tok, lp) in enumerate(zip(best, best_lp)):
        score += lp  # frame by frame, so any chunking sums in the same order
        if tok != blank and tok != prev:
            tokens.append(tok)
            frames.append(state.frame + i)
            confs.append(math.exp(lp))
        prev = tok
    hyp = Hypothesis(tuple(tokens), tuple(frames), tuple(confs), score)
    return GreedyState(hyp=hyp, prev=prev, frame=state.frame + len(best))


def greedy_search(log_probs: torch.Tensor, *, blank: int = 0) -> Hypothesis:
    return greedy_step(log_probs, GreedyState(), blank=blank).hyp


# ----------------------------------------------------------------------------------------------------------------
# Prefix beam search


@dataclass(frozen=True)
class _Prefix:
    p_blank: float  # log P(prefix, last frame emitted blank)
    p_nonblank: float  # log P(prefix, last frame emitted the prefix's last token)
    frames: tuple[int, ...]
    confidences: tuple[float, ...]

    @property
    def total(self) -> float:
        return _logaddexp(self.p_blank, self.p_nonblank)


@dataclass(frozen=True)
class BeamState:
    """Prefix beam search state: the surviving prefixes and the next frame index."""

    beams: tuple[tuple[tuple[int, ...], _Prefix], ...] = (((), _Prefix(0.0, -math.inf, (), ())),)
    frame: int = 0

    def best(self) -> Hypothesis:
        tokens, pre = max(self.beams, key=lambda kv: kv[1].total)
        return Hypothesis(tokens, pre.frames, pre.confidences, pre.total)


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


def beam_step(
    log_probs: torch.Tensor,
    state: BeamState,
    *,
    beam: int = 8,
    blank: int = 0,
    token_prune: int | None = 16,
) -> BeamState:
    """Consume frames [T, V] with CTC prefix beam search; pure (returns a new state).

    ``token_prune`` keeps only the top-k non-blank tokens per frame as extensions (None: all tokens).
    """
    _check_log_probs(log_probs)
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    lp = log_probs.float()
    V = lp.shape[-1]
    k = V if token_prune is None else min(token_prune + 1, V)
    top_lp, top_ids = lp.topk(k, dim=-1)
    top_lp_l, top_ids_l = top_lp.tolist(), top_ids.tolist()
    blank_l = lp[:, blank].tolist()
    beams = dict(state.beams)
    for t in range(lp.shape[0]):
        frame = state.frame + t
        nxt: dict[tuple[int, ...], list] = {}

        def acc(prefix, pb, pnb, frames, confs, _nxt=nxt):
            cur = _nxt.get(prefix)
            if cur is None:
                _nxt[prefix] = [pb, pnb, frames, confs]
            else:
                cur[0] = _logaddexp(cur[0], pb)
                cur[1] = _logaddexp(cur[1], pnb)

        lp_blank = blank_l[t]
        for prefix, pre in beams.items():
            total = pre.total
            # blank: prefix unchanged
            acc(prefix, total + lp_blank, -math.inf, pre.frames, pre.confidences)
            last = prefix[-1] if prefix else None
            for tok, tok_lp in zip(top_ids_l[t], top_lp_l[t]):
                if tok == blank:
                    continue
                if tok == last:
                    # repeat without a blank in between collapses onto the same prefix
                    acc(prefix, -math.inf, pre.p_nonblank + tok_lp, pre.frames, pre.confidences)
                    # a new token only after a blank
                    if pre.p_blank > -math.inf:
                        acc(
                            prefix + (tok,),
                            -math.inf,
                            pre.p_blank + tok_lp,
                            pre.frames + (frame,),
                            pre.confidences + (math.exp(tok_lp),),
                        )
                else:
                    acc(
                        prefix + (tok,),
                        -math.inf,
                        total + tok_lp,
                        pre.frames + (frame,),
                        pre.confidences + (math.exp(tok_lp),),
                    )
        ranked = sorted(nxt.items(), key=lambda kv: _logaddexp(kv[1][0], kv[1][1]), reverse=True)[:beam]
        beams = {p: _Prefix(v[0], v[1], v[2], v[3]) for p, v in ranked}
    return BeamState(beams=tuple(beams.items()), frame=state.frame + lp.shape[0])


def beam_search(
    log_probs: torch.Tensor, *, beam: int = 8, blank: int = 0, token_prune: int | None = 16
) -> Hypothesis:
    return beam_step(log_probs, BeamState(), beam=beam, blank=blank, token_prune=token_prune).best()

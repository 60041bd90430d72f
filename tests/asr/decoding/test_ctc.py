import itertools
import math

import pytest
import torch

from asr.decoding import BeamState, GreedyState, beam_search, beam_step, greedy_advance, greedy_search, greedy_step


def _random_log_probs(T, V, seed, peaky=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(peaky * torch.randn(T, V, generator=g), dim=-1)


def _brute_force_best(log_probs, blank=0):
    """Most probable labelling by summing over all alignments (tiny T, V only)."""
    T, V = log_probs.shape
    totals = {}
    for path in itertools.product(range(V), repeat=T):
        collapsed = []
        prev = None
        for s in path:
            if s != prev and s != blank:
                collapsed.append(s)
            prev = s
        lp = sum(log_probs[t, s].item() for t, s in enumerate(path))
        key = tuple(collapsed)
        totals[key] = math.log(math.exp(totals[key]) + math.exp(lp)) if key in totals else lp
    best = max(totals, key=totals.get)
    return best, totals[best]


def test_greedy_collapses_repeats_and_blanks():
    # frames: a a _ a b b _  -> a a b
    ids = [1, 1, 0, 1, 2, 2, 0]
    lp = torch.full((len(ids), 3), -10.0)
    for t, i in enumerate(ids):
        lp[t, i] = -0.01
    hyp = greedy_search(lp)
    assert hyp.tokens == (1, 1, 2)
    assert hyp.frames == (0, 3, 4)
    assert all(0.98 < c <= 1.0 for c in hyp.confidences)


@pytest.mark.parametrize("seed", range(5))
def test_beam_search_finds_most_probable_labelling(seed):
    lp = _random_log_probs(5, 3, seed, peaky=1.0)
    best, best_lp = _brute_force_best(lp)
    hyp = beam_search(lp, beam=64, token_prune=None)
    assert hyp.tokens == best
    assert hyp.score == pytest.approx(best_lp, abs=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_chunked_decoding_equals_whole(seed):
    lp = _random_log_probs(57, 9, seed)
    whole_g = greedy_search(lp)
    whole_b = beam_search(lp, beam=4)
    gs, bs = GreedyState(), BeamState()
    g = torch.Generator().manual_seed(seed)
    start = 0
    while start < lp.shape[0]:
        n = int(torch.randint(0, 9, (1,), generator=g))
        gs = greedy_step(lp[start : start + n], gs)
        bs = beam_step(lp[start : start + n], bs, beam=4)
        start += n
    assert gs.hyp == whole_g
    assert bs.best() == whole_b


def test_greedy_advance_from_a_batch_argmax_equals_greedy_step():
    """The recognizer takes one argmax for the whole batch and advances each stream from its rows."""
    lp = torch.stack([_random_log_probs(12, 7, seed) for seed in range(3)])  # [B, T, V]
    best_lp, best = lp.max(-1)
    for b in range(3):
        step_state, advance_state = GreedyState(), GreedyState()
        for a in range(0, 12, 4):
            step_state = greedy_step(lp[b, a : a + 4], step_state)
            advance_state = greedy_advance(best[b, a : a + 4].tolist(), best_lp[b, a : a + 4].tolist(), advance_state)
        assert advance_state == step_state and step_state.hyp == greedy_search(lp[b])
    with pytest.raises(ValueError, match="2 labels and 1 log-prob"):
        greedy_advance([1, 2], [0.0], GreedyState())


def test_beam_one_matches_greedy_on_peaky_posteriors():
    lp = _random_log_probs(40, 6, 0, peaky=8.0)
    assert beam_search(lp, beam=1).tokens == greedy_search(lp).tokens


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="log_probs must be"):
        greedy_search(torch.zeros(3))
    with pytest.raises(ValueError, match="beam must be"):
        beam_search(torch.zeros(3, 4), beam=0)

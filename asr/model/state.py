"""Generic batching of streaming states.

Every state in the model is a NamedTuple whose leaves are tensors with the batch dimension first, None
(an absent optional part), or nested NamedTuples / tuples of those. ``stack_tree`` concatenates N such
states along the batch dimension and ``unstack_tree`` splits one back into batch-1 states; they are inverse
functions. A state class whose leaves cannot simply be concatenated (the softmax KV cache, whose length
differs between streams) provides its own ``stack_batch(items)`` staticmethod and ``select_row(b)`` method.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch

__all__ = ["select_tree", "state_batch_size", "stack_tree", "unstack_tree"]

T = TypeVar("T")


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def stack_tree(items: Sequence[T]) -> T:
    """Concatenate states along the batch dimension (each item may itself hold several streams)."""
    if len(items) == 0:
        raise ValueError("cannot stack an empty list of states")
    first = items[0]
    kinds = {type(x) for x in items}
    if len(kinds) != 1:
        raise ValueError(f"cannot stack states of different types: {sorted(k.__name__ for k in kinds)}")
    if first is None:
        return None  # type: ignore[return-value]
    if isinstance(first, torch.Tensor):
        shapes = {tuple(x.shape[1:]) for x in items}  # type: ignore[union-attr]
        if len(shapes) != 1:
            raise ValueError(f"cannot stack state tensors with different non-batch shapes {sorted(shapes)}")
        return torch.cat(list(items), dim=0)  # type: ignore[return-value]
    if hasattr(type(first), "stack_batch"):
        return type(first).stack_batch(list(items))  # type: ignore[attr-defined]
    if isinstance(first, tuple):
        lengths = {len(x) for x in items}  # type: ignore[arg-type]
        if len(lengths) != 1:
            raise ValueError(f"cannot stack states with different numbers of parts {sorted(lengths)}")
        parts = [stack_tree([x[i] for x in items]) for i in range(len(first))]  # type: ignore[index]
        return type(first)(*parts) if _is_namedtuple(first) else type(first)(parts)  # type: ignore[return-value]
    raise ValueError(f"unsupported state leaf of type {type(first).__name__}")


def unstack_tree(state: T) -> list[T]:
    """Split a batched state into a list of batch-1 states (fresh tensors, not views of the batch)."""
    n = state_batch_size(state)
    return [select_tree(state, b) for b in range(n)]


def select_tree(state: Any, b: int, *, copy: bool = True) -> Any:
    """Row ``b`` of a batched state as a batch-1 state: fresh tensors, or with ``copy=False`` views of the
    batch's (a part with its own ``select_row``, the softmax KV cache, trims its padding into a copy)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state[b : b + 1].clone() if copy else state[b : b + 1]
    if hasattr(type(state), "select_row"):
        return state.select_row(b)
    if isinstance(state, tuple):
        parts = [select_tree(x, b, copy=copy) for x in state]
        return type(state)(*parts) if _is_namedtuple(state) else type(state)(parts)
    raise ValueError(f"unsupported state leaf of type {type(state).__name__}")


def state_batch_size(state: Any) -> int:
    """The batch size shared by every tensor of ``state`` (ValueError if they disagree or there are none)."""
    sizes: set[int] = set()

    def visit(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            sizes.add(int(x.shape[0]))
        elif isinstance(x, tuple):
            for y in x:
                visit(y)
        elif x is not None:
            raise ValueError(f"unsupported state leaf of type {type(x).__name__}")

    visit(state)
    if len(sizes) != 1:
        raise ValueError(f"state tensors must share one batch size, found {sorted(sizes)}")
    return sizes.pop()

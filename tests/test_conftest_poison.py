"""The suite's NaN poisoning of uninitialised float memory (tests/conftest.py) is in force."""

import torch


def test_uninitialised_float_memory_is_nan_and_integers_are_left_alone():
    assert torch.isnan(torch.empty(3, 4)).all()
    assert torch.isnan(torch.empty_like(torch.zeros(2, dtype=torch.float64))).all()
    assert torch.isnan(torch.zeros(1).new_empty(5)).all()
    assert torch.empty(3, dtype=torch.int64).dtype == torch.int64  # (integers have no NaN: not filled)
    x = torch.empty(2, 2, requires_grad=True)
    assert x.requires_grad and x.is_leaf and torch.isnan(x).all()

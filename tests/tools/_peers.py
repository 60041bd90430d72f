"""Helpers shared by the peer-tool tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The peer tools set torch's thread count: restore it for the rest of the session."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_peer(peer, manifest: Path, out: Path, *extra: str) -> Path:
    """Run a peer tool's main on ``tiny=<manifest>`` into ``out``; returns ``out``."""
    assert peer.main(["--data", f"tiny={manifest}", "--out", str(out), "--no-progress", *extra]) == 0
    return out

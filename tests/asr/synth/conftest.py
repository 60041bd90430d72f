"""Shared, session-scoped inputs for the synthetic-corpus tests (loading them costs a few seconds)."""

from __future__ import annotations

import pytest

from asr.synth.engines import available_engines
from asr.synth.generate import PRESETS
from asr.synth.text import load_sentences


@pytest.fixture(scope="session")
def synth_engines():
    """Every TTS engine on this machine (the project's Debian and PyPI dependencies install four)."""
    return available_engines()


@pytest.fixture(scope="session")
def tiny_pools():
    """The sentence pools of the tiny preset."""
    return load_sentences(config=PRESETS["tiny"]["text"])

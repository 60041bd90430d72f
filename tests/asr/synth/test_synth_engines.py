"""TTS engine discovery and one utterance from every engine installed by the project's dependencies."""

from __future__ import annotations

import importlib.util
import random
import shutil

import numpy as np
import pytest
import soundfile as sf

from asr.synth import engines as engines_module
from asr.synth.engines import Request, available_engines

# Installed by deps/debian-packages.txt, deps/debian-nonfree-packages.txt and pyproject.toml.
FREE_ENGINES = {"espeak-ng", "flite", "festival", "piper", "pico", "rhvoice"}


def test_the_free_engines_are_found_with_their_voices(synth_engines):
    assert FREE_ENGINES <= set(synth_engines)
    assert len(synth_engines["espeak-ng"].voice_names) > 100  # accents x variants
    assert set(synth_engines["flite"].voice_names) == {"kal16", "awb", "rms", "slt"}
    assert set(synth_engines["festival"].voice_names) == {
        "kal_diphone",
        "ked_diphone",
        "cmu_us_slt_arctic_hts",
        "don_diphone",
        "rab_diphone",
    }
    assert set(synth_engines["rhvoice"].voice_names) == {"alan", "bdl", "clb", "slt"}  # the LGPL voices only
    assert set(synth_engines["pico"].voice_names) == {"en-US", "en-GB"}
    for engine in synth_engines.values():
        assert engine.version() and engine.version() != "unknown"
        assert engine.licence


def test_every_engine_speaks_every_kind_of_voice(synth_engines, tmp_path):
    text = "THE CAT SAT ON THE MAT"
    for name, engine in synth_engines.items():
        speakers = engine.speakers(random.Random(0))
        assert len({s.key for s in speakers}) == len(speakers) >= 3, name
        # One speaker per voice (espeak-ng: three of its hundreds); the first voice twice.
        by_voice = {s.voice: s for s in speakers}
        chosen = sorted(by_voice)[:: max(1, len(by_voice) // 3)][:3]
        requests = [
            Request(text=text, wav_path=tmp_path / f"{name}-{i}.wav", speaker=by_voice[v])
            for i, v in enumerate([chosen[0], *chosen])
        ]
        engine.synthesize(requests)
        for req in requests:
            audio, sr = sf.read(req.wav_path, dtype="float32")
            assert sr >= 8000 and audio.ndim == 1, (req.wav_path, sr, audio.shape)
            assert 0.7 < len(audio) / sr < 5.0, (req.wav_path, len(audio) / sr)
            assert np.sqrt(np.mean(audio**2)) > 1e-3, req.wav_path
        if engine.deterministic:
            first, again = (sf.read(r.wav_path)[0] for r in requests[:2])
            assert np.array_equal(first, again), name


def test_non_commercial_voices_are_used_only_when_named(synth_engines):
    # MBROLA voices forbid commercial use: never part of the default engine set, whatever is installed.
    assert not {"mbrola", "festival-mbrola"} & set(synth_engines)
    assert not engines_module.ENGINES["mbrola"].default_enabled
    assert not engines_module.ENGINES["festival-mbrola"].default_enabled
    assert all(engines_module.ENGINES[name].default_enabled for name in FREE_ENGINES)


def test_unknown_and_missing_engines_are_reported(monkeypatch):
    with pytest.raises(ValueError, match="unknown TTS engine"):
        available_engines(["espeak-ng", "sam"])
    monkeypatch.setattr(shutil, "which", lambda name: None)  # every engine module looks them up through these
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="no TTS engine is available"):
        available_engines()
    with pytest.raises(ValueError, match="not available"):
        available_engines(["flite"])

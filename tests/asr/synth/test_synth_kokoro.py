"""The Kokoro engine (asr.synth.kokoro): its voices' install (checked download), espeak-ng's phonemes rewritten
into symbols the model knows for every sentence kind the corpus speaks, speech Whisper can read, speed, and the
engine staying out of the default set (the corpora the figures were measured on must plan the same)."""

from __future__ import annotations

import io
import random
import tarfile

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import resample
from asr.peers.whisper import WhisperTiny
from asr.synth import engines as engines_module
from asr.synth import kokoro
from asr.synth.engines import Request, available_engines
from asr.text.normalize import normalize_text


@pytest.fixture(scope="module")
def model():
    return kokoro.Kokoro(threads=1)


def test_the_english_voices_and_the_model_are_installed():
    """`make tts-voices` installs the 20 American and 8 British voices; pyproject.toml the model's wheels."""
    voices = kokoro.english_voices()
    assert len(voices) == 28 and sum(v.startswith(("bf_", "bm_")) for v in voices) == 8
    assert kokoro.model_installed() and kokoro.model_path().stat().st_size > 50e6
    assert "kokoro-js 1.2.1" in kokoro.versions()


def test_a_tarball_that_is_not_the_published_one_is_refused_and_nothing_is_written(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = np.zeros((510, 256), np.float32).tobytes()
        info = tarfile.TarInfo("package/voices/af_fake.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(kokoro.KokoroUnavailable, match="sha512 mismatch"):
        kokoro.install_voices(tmp_path / "voices", tarball=buf.getvalue())
    assert not (tmp_path / "voices").exists()


def test_an_installed_folder_is_not_downloaded_again(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("downloaded although the voices are installed")

    monkeypatch.setattr(kokoro.urllib.request, "urlopen", no_network)
    assert kokoro.install_voices() == kokoro.voices_dir()


@pytest.mark.parametrize("language", ["en-us", "en-gb"])
def test_every_sentence_kind_turns_into_symbols_kokoro_knows(language, tiny_pools):
    """espeak-ng's IPA for the corpus's sentences (read text, questions, commands, numbers said as words, short
    phrases, from every split's pool) rewritten for Kokoro: no symbol outside its vocabulary, stress marks kept."""
    rng = random.Random(0)
    sentences = [s for pool in tiny_pools.values() for s in rng.sample(list(pool), min(40, len(pool)))]
    assert len(sentences) >= 60
    for text in sentences:
        phonemes = kokoro.phonemes(text, language)
        assert kokoro.tokens(phonemes), text  # raises on a symbol Kokoro lacks
        assert "^" not in phonemes and "ː" not in phonemes and phonemes.endswith(".")
    assert "ˈ" in kokoro.phonemes("GO FORWARD TEN METERS", language)


def test_bad_phonemes_are_named():
    with pytest.raises(ValueError, match=r"does not know: \['ʘ'\]"):
        kokoro.tokens("ʘa")
    with pytest.raises(ValueError, match="at most 510"):
        kokoro.tokens("a" * 511)


def test_speech_whisper_reads_deterministic_and_at_the_asked_speed(model):
    whisper = WhisperTiny()
    text = "WHERE IS THE NEAREST TRAIN STATION"
    for voice in ("af_heart", "am_michael", "bf_emma", "bm_george"):
        audio = model.synthesize(text, voice)
        assert 1.0 < audio.size / kokoro.SAMPLE_RATE < 4.0, voice
        assert np.array_equal(audio, model.synthesize(text, voice)), voice
        at_16k = resample(torch.from_numpy(audio), orig_sr=kokoro.SAMPLE_RATE, target_sr=16000).numpy()
        heard = whisper.transcribe(at_16k, 16000).text
        assert jiwer.wer(normalize_text(text), normalize_text(heard)) <= 0.2, (voice, heard)
    fast, slow = (model.synthesize(text, "af_heart", speed=s).size for s in (1.15, 0.85))
    assert fast < 0.9 * slow
    with pytest.raises(ValueError, match="unknown Kokoro voice"):
        model.synthesize(text, "xx_nobody")


def test_the_engine_speaks_but_only_when_named(tmp_path):
    assert "kokoro" not in available_engines()  # default set: unchanged
    assert not engines_module.ENGINES["kokoro"].default_enabled
    engine = available_engines(["kokoro"])["kokoro"]
    assert len(engine.voice_names) == 28 and engine.licence and "Kokoro-82M" in engine.version()
    speakers = engine.speakers(random.Random(0))
    assert len(speakers) == len({s.key for s in speakers}) == 28 * 3 * 3
    assert len({s.split_group for s in speakers}) == 28  # a voice stays in one split at every rate and pitch
    req = Request(text="THE CAT SAT ON THE MAT", wav_path=tmp_path / "cat.wav", speaker=speakers[0])
    engine.synthesize([req])
    audio, sr = sf.read(req.wav_path, dtype="float32")
    assert sr == kokoro.SAMPLE_RATE and 0.7 < audio.size / sr < 5.0


def test_a_missing_part_is_named(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("TRANSCURRENT_TTS_CACHE", str(tmp_path))  # no voices there
    with caplog.at_level("WARNING", logger="asr.synth.engines"), pytest.raises(ValueError, match="not available"):
        available_engines(["kokoro"])
    assert "make tts-voices" in caplog.text and str(tmp_path) in caplog.text


def test_blend_names_round_trip_and_bad_ones_are_named():
    assert kokoro.blend_name("bm_george", "af_bella", 70) == "bm_george70+af_bella30"
    assert kokoro.blend_parts("bm_george70+af_bella30") == (("bm_george", 0.7), ("af_bella", 0.3))
    assert kokoro.blend_parts("af_heart") == (("af_heart", 1.0),)
    assert kokoro.espeak_language("bm_george70+af_bella30") == "en-gb"
    assert kokoro.espeak_language("af_bella70+bm_george30") == "en-us"
    for bad in ("af_bella30+bm_george70", "af_bella60+bm_george30", "af_bella50+af_bella50", "af_bella+bm_george"):
        with pytest.raises(ValueError, match="bad Kokoro voice blend"):
            kokoro.blend_parts(bad)
    with pytest.raises(ValueError, match="two different voices"):
        kokoro.blend_name("af_bella", "af_bella", 60)
    with pytest.raises(ValueError, match="50..95"):
        kokoro.blend_name("af_bella", "bm_george", 40)
    with pytest.raises(ValueError, match="bad Kokoro voice blend"):
        kokoro.blend_name("af_bella2", "bm_george", 60)


def test_a_blend_is_the_weighted_mean_of_two_voices_and_whisper_reads_it(model):
    a, b = model.style("am_michael"), model.style("bf_emma")
    assert np.allclose(model.style("am_michael60+bf_emma40"), 0.6 * a + 0.4 * b, atol=1e-6)
    with pytest.raises(ValueError, match="unknown Kokoro voice 'xx_nobody'"):
        model.style("am_michael60+xx_nobody40")
    whisper = WhisperTiny()
    text = "PLEASE TURN LEFT AT THE NEXT CORNER"
    blend = model.synthesize(text, "am_michael60+bf_emma40")
    assert np.array_equal(blend, model.synthesize(text, "am_michael60+bf_emma40"))
    for voice in ("am_michael", "bf_emma"):  # a speaker of its own, not either voice
        other = model.synthesize(text, voice)
        assert blend.size != other.size or not np.allclose(blend, other, atol=1e-3), voice
    at_16k = resample(torch.from_numpy(blend), orig_sr=kokoro.SAMPLE_RATE, target_sr=16000).numpy()
    heard = whisper.transcribe(at_16k, 16000).text
    assert jiwer.wer(normalize_text(text), normalize_text(heard)) <= 0.2, heard


def test_the_blend_engine_draws_its_speakers_from_the_seed_and_only_when_named():
    assert "kokoro-blend" not in available_engines()
    engine = available_engines(["kokoro-blend"])["kokoro-blend"]
    speakers = engine.speakers(random.Random("4:engine:kokoro-blend"))
    voices = {s.voice for s in speakers}
    assert len(voices) == engine.blends == len({s.split_group for s in speakers})
    assert len(speakers) == len({s.key for s in speakers}) == engine.blends * 3 * 3
    assert speakers == engine.speakers(random.Random("4:engine:kokoro-blend"))
    assert voices != {s.voice for s in engine.speakers(random.Random("5:engine:kokoro-blend"))}
    for voice in voices:
        (first, share), (second, _) = kokoro.blend_parts(voice)
        assert {first, second} <= set(engine.voice_names) and round(share * 100) in engine.percent_grid

"""Plan settings added after corpora were planned: left out of old plans, excluded voice settings, the varied preset."""

from __future__ import annotations

import dataclasses

import pytest

from asr.synth.generate import PRESETS, SynthConfig, _config_dict, config_with_preset, make_plan, setting_key

NEW_FIELDS = {"excluded_settings"}
NEW_TEXT_FIELDS = {"extra_sources", "exclude_references"}


def test_new_fields_at_their_defaults_are_not_in_the_plan():
    """Plans written before these fields existed (data/synth_clean) compare equal to today's, so they resume."""
    for preset in ("tiny", "clean"):
        config = config_with_preset(preset, hours=1.0, seed=1)
        plan_config = _config_dict(config)
        assert not NEW_FIELDS & set(plan_config) and not NEW_TEXT_FIELDS & set(plan_config["text"])
        assert set(plan_config) == {f.name for f in dataclasses.fields(SynthConfig)} - NEW_FIELDS
        assert plan_config["text"]["min_words"] == PRESETS[preset]["text"].min_words
    varied = _config_dict(config_with_preset("varied", excluded_settings=["flite:kal16:*"]))
    assert varied["excluded_settings"] == ["flite:kal16:*"]
    assert varied["text"]["exclude_references"] is True
    assert ["digits", 3500] in varied["text"]["extra_sources"]


def test_setting_key_is_engine_voice_rate():
    voice = {"engine": "flite", "voice": "slt", "rate": 1.15, "pitch_cents": -150}
    assert setting_key(voice) == "flite:slt:rate1.15"


def test_excluded_settings_are_never_planned(synth_engines, tiny_pools):
    base = config_with_preset("tiny", hours=0.5, utts_per_speaker=10)
    plan = make_plan(base, synth_engines, tiny_pools)
    keys = {setting_key(s["voice"]) for s in plan["speakers"]}
    flite = sorted(k for k in keys if k.startswith("flite:"))
    assert len(flite) >= 3
    dropped = flite[0]
    config = dataclasses.replace(base, excluded_settings=(dropped,))
    replanned = make_plan(config, synth_engines, tiny_pools)
    new_keys = {setting_key(s["voice"]) for s in replanned["speakers"]}
    assert dropped not in new_keys and any(k.startswith("flite:") for k in new_keys)
    # A pattern can exclude a whole engine: its share goes to the others.
    no_flite = make_plan(dataclasses.replace(base, excluded_settings=("flite:*",)), synth_engines, tiny_pools)
    assert not any(s["voice"]["engine"] == "flite" for s in no_flite["speakers"])
    assert {u["engine"] for u in no_flite["utterances"]} == {u["engine"] for u in plan["utterances"]} - {"flite"}
    seconds = sum(u["est_seconds"] for u in no_flite["utterances"])
    assert seconds == pytest.approx(sum(u["est_seconds"] for u in plan["utterances"]), rel=0.15)


def test_varied_preset_is_clean_audio_with_the_new_text():
    varied, clean = config_with_preset("varied"), config_with_preset("clean")
    assert varied.augment == clean.augment and varied.augment.reverb_prob == 0 and varied.augment.noise_prob == 0
    assert varied.split_shares == clean.split_shares and varied.engine_weights == clean.engine_weights
    text = varied.text
    assert text.exclude_references and not text.use_fortunes and not text.use_wordnet
    assert {"fortunes", "commands", "numbers", "digits", "times", "dates", "letters", "phrases"} <= dict(
        text.extra_sources
    ).keys()


def test_synth_command_reads_an_exclusion_file(synth_engines, tiny_pools, tmp_path):
    from asr.commands.synth import read_excluded_settings

    path = tmp_path / "excluded_settings.txt"
    path.write_text("# voices Whisper cannot read\nflite:kal16:*\n\nespeak-ng:*  # all of them\n")
    keys = read_excluded_settings(path)
    assert keys == ("flite:kal16:*", "espeak-ng:*")
    plan = make_plan(config_with_preset("tiny", excluded_settings=keys), synth_engines, tiny_pools)
    planned = {setting_key(s["voice"]) for s in plan["speakers"]}
    assert planned and not any(k.startswith(("flite:kal16:", "espeak-ng:")) for k in planned)
    path.write_text("kal16\n")
    with pytest.raises(ValueError, match="not engine:voice"):
        read_excluded_settings(path)
    with pytest.raises(ValueError, match="cannot read it"):
        read_excluded_settings(tmp_path / "missing.txt")

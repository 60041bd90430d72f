"""asr.data.realspeech_sources: each package reader on a tiny fake of its on-disk layout (zips, sounds.xml,
soundtheme, audio.cfg, raw PCM), and the reviewed tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.data.manifest import PrepareReport
from asr.data.realspeech_sources import (
    CODEC2_HARVARD,
    PACKAGES,
    READERS,
    SourceClip,
    read_clip_audio,
    read_sources,
)
from asr.text.normalize import normalize_text

from ._realspeech_fakes import make_packages


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    return make_packages(tmp_path_factory.mktemp("fs"))


@pytest.fixture(scope="module")
def read(fake_root):
    report = PrepareReport(name="src", corpus="realspeech", source=str(fake_root))
    clips = {c.id: c for c in read_sources(fake_root, report)}
    return clips, report


def _skips(report, reason):
    return sorted(i.item for i in report.skipped if i.reason == reason)


def test_every_package_is_read_with_its_licence_checked(read):
    clips, report = read
    assert {c.package for c in clips.values()} == set(READERS)
    assert not report.flagged  # every fake copyright file names the licence of the table
    for c in clips.values():
        assert PACKAGES[c.package].licence


def test_klettres_names_from_sounds_xml_phonics_and_missing_files_reported(read):
    clips, report = read
    a, dog, b = clips["klettres-en-alphabet-A"], clips["klettres-en-syllables-dog"], clips["klettres-en_GB-alphabet-b"]
    assert (a.reference, a.group, a.reference_source) == ("A", "klettres/en", "en/sounds.xml alphabet")
    assert (dog.reference, b.reference, b.group) == ("DOG", "B", "klettres/en_GB")
    assert "klettres-en-syllables-th" in _skips(report, "not_a_word")
    assert "klettres-en-syllables-cat" in _skips(report, "missing_audio")
    assert not [i for i in clips if "fr" in i.split("-")]


def test_ktuberling_file_names_through_the_mapping_table(read):
    clips, _ = read
    assert clips["ktuberling-en-hat"].reference == "hat"
    palm = clips["ktuberling-en-egypt_palmtree"]
    assert palm.reference == "palm tree" and palm.reference_source == "file name (mapping table)"
    assert clips["ktuberling-en-pizzeria_broccolli"].reference == "broccoli"
    ufo = clips["ktuberling-en-moon_ufo"]
    assert ufo.reference is None and ufo.hint == "ufo"  # undecidable from the name: recognizers decide
    assert {c.group for c in clips.values() if c.package == "ktuberling-data"} == {"ktuberling/en"}


def test_tuxpaint_stamp_words_letters_digits_and_one_copy_of_a_shared_recording(read):
    clips, report = read
    tux = {i: c.reference for i, c in clips.items() if c.package == "tuxpaint-stamps-default"}
    assert tux == {
        "tuxpaint-animals-birds-duck_desc": "duck",
        "tuxpaint-animals-birds-tucan_desc": "toucan",
        "tuxpaint-symbols-alphabets-english-filled-uppercase-A_filled_en_GB": "A",
        "tuxpaint-symbols-math-7_en_GB": "seven",
        "tuxpaint-symbols-math-3": "three",
    }
    dups = [i for i in _skips(report, "duplicate_audio") if i.startswith("tuxpaint")]
    assert dups == ["tuxpaint-symbols-alphabets-english-outlined-uppercase-A_outlined_en_GB"]


def test_nexuiz_zip_voices_with_file_name_hints_grunts_reported(read, fake_root):
    clips, report = read
    nex = {i: c for i, c in clips.items() if c.package == "nexuiz-data"}
    assert sorted(nex) == [
        "nexuiz-announcer-robotic-prepareforbattle",
        "nexuiz-player-marine-coms-needhelp1",
        "nexuiz-player-torus-letsgo",
        "nexuiz-tutorial-5-to_the_left",
    ]
    c = nex["nexuiz-player-marine-coms-needhelp1"]
    assert (c.group, c.hint) == ("nexuiz/marine", "needhelp")
    assert c.origin == f"{fake_root}/usr/share/games/nexuiz/data/data.pk3::sound/player/marine/coms/needhelp1.ogg"
    assert nex["nexuiz-tutorial-5-to_the_left"].hint == "to the left"
    assert {"nexuiz-player-marine-player-death1", "nexuiz-player-torus-pain25"} <= set(_skips(report, "no_speech"))
    assert any("weapons" in n for n in report.notes)


def test_warzone_audio_cfg_comments_are_hints_copies_and_laughter_reported(read):
    clips, report = read
    wz = {i: c for i, c in clips.items() if c.package == "warzone2100-data"}
    assert sorted(wz) == [
        "warzone2100-memressp-console-pcv480",
        "warzone2100-memressp-detect-pcv373",
        "warzone2100-sequenceaudio-res_droid",
        "warzone2100-vtoltalk-v-onway1",
    ]
    assert wz["warzone2100-memressp-detect-pcv373"].hint == "Scavengers Detected"
    assert wz["warzone2100-vtoltalk-v-onway1"].group == "warzone2100/vtol"
    assert {c.group for i, c in wz.items() if "vtoltalk" not in i} == {"warzone2100/narrator"}
    assert wz["warzone2100-memressp-console-pcv480"].hint is None  # no comment in audio.cfg
    assert "warzone2100-memressp-missmesg-pcv480" in _skips(report, "duplicate_audio")
    assert "warzone2100-nexus-laugh1" in _skips(report, "no_speech")


def test_hedgewars_packs_are_groups_other_languages_and_grunts_reported(read):
    clips, report = read
    hw = {i: c for i, c in clips.items() if c.package == "hedgewars-data"}
    assert {i: (c.group, c.hint) for i, c in hw.items()} == {
        "hedgewars-Pirate-Youllregretthat": ("hedgewars/Pirate", "Youllregretthat"),
        "hedgewars-Pirate-Uh-oh": ("hedgewars/Pirate", "Uh oh"),
    }
    assert _skips(report, "not_english") == ["hedgewars-Default_es-Hello"]
    assert "hedgewars-Pirate-Ooff1" in _skips(report, "no_speech")


def test_megaglest_replies_only_copies_reported(read):
    clips, report = read
    mg = sorted(i for i, c in clips.items() if c.package == "megaglest-data")
    assert mg == ["megaglest-commondata-archer_select2", "megaglest-norsemen-swordman-swordman_ack1"]
    assert "megaglest-romans-swordman-swordman_ack1" in _skips(report, "duplicate_audio")


def test_codec2_harvard_sentences_parts_and_modem_signals(read):
    clips, report = read
    hts = clips["codec2-hts"]
    assert hts.raw_rate == 8000 and hts.reference_source.startswith("Harvard sentences 9.1, 9.4, 1.4")
    assert normalize_text(hts.reference).startswith("THE NAVY ATTACKED THE BIG TASK FORCE THE HAT BRIM")
    assert clips["codec2-mmt1-wav"].reference == "It's easy to tell the depth of a well."
    assert clips["codec2-kristoff"].reference is None  # radio talk: recognizers decide
    assert (hts.group, clips["codec2-kristoff"].group) == ("codec2/sentences", "codec2/kristoff")
    assert "codec2-hts1a" in _skips(report, "duplicate_audio")
    assert "codec2-sine1k_2Hz_spread" in _skips(report, "no_speech")
    assert "codec2-speech_orig_16k" in _skips(report, "missing_audio")  # in the table, absent from the fake


def test_harvard_table_sentences_are_distinct_and_end_with_a_full_stop():
    sentences = [s for group in CODEC2_HARVARD.values() for _, s in group]
    assert all(s.endswith(".") and s[0].isupper() for s in sentences)
    numbers = [n for _, group in CODEC2_HARVARD.items() for n, _ in group if _ != "wav/mmt1.wav"]
    assert all(n.count(".") == 1 for n in numbers)


def test_freedroid_tux_hints_and_droid_samples(read):
    clips, _ = read
    assert clips["freedroidrpg-tux-ThisItemRequiresBothHands"].hint == "This Item Requires Both Hands"
    assert clips["freedroidrpg-tux-ICantCarryAnyMore_Sound_1"].hint == "ICant Carry Any More"
    assert clips["freedroidrpg-droid-3"].hint is None and clips["freedroidrpg-droid-3"].group == "freedroidrpg"


def test_audio_from_files_zip_members_and_raw_pcm(read, fake_root):
    clips, _ = read
    x, sr = read_clip_audio(clips["nexuiz-player-torus-letsgo"])  # inside the pk3
    assert sr == 44100 and x.dtype == np.float32 and x.ndim == 1 and x.size == pytest.approx(0.4 * 44100, abs=1)
    raw = clips["codec2-hts"]
    x, sr = read_clip_audio(raw)
    pcm = np.fromfile(raw.origin, dtype="<i2")
    assert sr == 8000 and np.array_equal(x, pcm.astype(np.float32) / 32768.0)
    stereo = fake_root / "stereo.ogg"
    sf.write(stereo, np.stack([np.full(800, 0.5), np.zeros(800)], axis=1), 8000, format="OGG")
    x, _ = read_clip_audio(SourceClip("s", "klettres-data", "g", str(stereo)))
    assert x.shape == (800,) and abs(float(np.median(x)) - 0.25) < 0.02  # channels averaged


def test_missing_package_names_it_and_bad_ids_are_refused(tmp_path):
    report = PrepareReport(name="src", corpus="realspeech", source=str(tmp_path))
    with pytest.raises(ValueError, match="apt-get install --no-install-recommends hedgewars-data"):
        read_sources(tmp_path, report, packages=("hedgewars-data",))
    with pytest.raises(ValueError, match="unknown real-speech packages"):
        read_sources(tmp_path, report, packages=("asterisk-core-sounds-en",))
    with pytest.raises(ValueError, match="letters, digits"):
        SourceClip("a b", "klettres-data", "g", "/x")


def test_licence_mismatch_is_flagged(tmp_path):
    make_packages(tmp_path)
    (tmp_path / "usr/share/doc/megaglest-data/copyright").write_text("License: proprietary\n")
    report = PrepareReport(name="src", corpus="realspeech", source=str(tmp_path))
    read_sources(tmp_path, report, packages=("megaglest-data",))
    assert [(i.reason, i.item) for i in report.flagged] == [("licence_mismatch", "megaglest-data")]

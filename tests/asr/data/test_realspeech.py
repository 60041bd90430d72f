"""Against the installed Debian packages pocketsphinx-testdata and alsa-utils (deps/debian-packages.txt)."""

import numpy as np
import pytest
import soundfile as sf

from asr.data.manifest import PrepareReport, check_utterances
from asr.data.realspeech import ALSA_DIR, POCKETSPHINX_DIR, read_realspeech


def test_real_speech_dev_set(tmp_path):
    report = PrepareReport(name="realspeech", corpus="realspeech", source="debian")
    utts = {u.id: u for u in check_utterances(read_realspeech(tmp_path, report), report)}
    groups = {}
    for u in utts.values():
        groups.setdefault(u.extra["group"], []).append(u.id)
    assert {g: len(v) for g, v in groups.items()} == {
        "pocketsphinx/librivox": 5,
        "pocketsphinx/cards": 5,
        "pocketsphinx/raw": 2,
        "alsa": 8,
    }
    lv = utts["librivox-sense_and_sensibility_01_austen_64kb-0880"]
    assert lv.text == "HE WAS NOT AN ILL DISPOSED YOUNG MAN"  # <s> </s> removed, upper-cased
    assert lv.audio == str(POCKETSPHINX_DIR / "librivox/sense_and_sensibility_01_austen_64kb-0880.wav")
    assert lv.duration == pytest.approx(sf.info(lv.audio).duration, abs=1e-6)
    assert utts["cards-001"].text == "TEN OF CLUBS" and utts["cards-001"].speaker == "cards"
    total = sum(utts[i].duration for i in groups["pocketsphinx/librivox"])
    assert total == pytest.approx(24.7, abs=0.1)  # the figure in shared/DATA.md

    # The .raw recordings became 16 kHz WAV files in the output folder, sample for sample.
    gf = utts["goforward"]
    assert gf.text == "GO FORWARD TEN METERS" and gf.audio == str(tmp_path / "realspeech_wav/goforward.wav")
    raw = np.fromfile(POCKETSPHINX_DIR / "goforward.raw", dtype="<i2")
    wav, sr = sf.read(gf.audio, dtype="int16")
    assert sr == 16000 and np.array_equal(wav, raw)
    assert gf.duration == pytest.approx(raw.size / 16000)
    assert gf.extra["original"] == str(POCKETSPHINX_DIR / "goforward.raw")
    assert utts["tidigits-dhd.2934z"].text == "TWO NINE THREE FOUR ZERO"

    # ALSA: 48 kHz files, the loader resamples to 16 kHz.
    fl = utts["alsa-Front_Left"]
    assert fl.text == "FRONT LEFT" and fl.audio == str(ALSA_DIR / "Front_Left.wav")
    assert sf.info(fl.audio).samplerate == 48000
    assert fl.load_audio().shape[0] == pytest.approx(fl.duration * 16000, abs=2)

    assert sorted((i.reason, i.item) for i in report.skipped) == [
        ("missing_transcript", "numbers.raw"),
        ("missing_transcript", "something.raw"),
        ("no_speech", "alsa-Noise"),
    ]
    assert not report.flagged


def test_missing_package_is_an_error_naming_it(tmp_path):
    report = PrepareReport(name="realspeech", corpus="realspeech", source="-")
    with pytest.raises(ValueError, match="apt-get install --no-install-recommends alsa-utils"):
        read_realspeech(tmp_path, report, alsa_dir=tmp_path / "no-alsa")


def test_converted_recordings_load_through_a_manifest_written_from_a_relative_out_dir(tmp_path, monkeypatch):
    from asr.data.manifest import read_manifest, write_manifest

    monkeypatch.chdir(tmp_path)
    report = PrepareReport(name="realspeech", corpus="realspeech", source="debian")
    utts = read_realspeech("data/real", report)
    write_manifest("data/real/realspeech.jsonl", utts)
    monkeypatch.chdir("/")
    back = {u.id: u for u in read_manifest(tmp_path / "data/real/realspeech.jsonl")}
    assert back["goforward"].load_audio().shape[0] == pytest.approx(back["goforward"].duration * 16000, abs=2)

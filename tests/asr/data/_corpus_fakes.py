"""Tiny corpora in their real on-disk layouts, with real audio files, for the reader tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def write_audio(path: Path, seconds: float, *, sr: int = SR, fmt: str | None = None, seed: int = 0) -> float:
    """Write ``seconds`` of quiet noise (a real, decodable file); returns the exact duration written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * sr))
    x = (np.random.default_rng(seed).standard_normal(n) * 0.05).astype(np.float32)
    sf.write(str(path), x, sr, format=fmt, subtype="PCM_16")
    return n / sr


def librispeech_subset(root: Path, name: str = "dev-clean") -> dict[str, float]:
    """A subset with 2 speakers / 3 chapters; returns {utt id: duration} of the good utterances.

    Bad inputs planted (each must appear in the report):
      19-198-0002.flac       audio without a transcript line        -> missing_transcript
      19-198-0003            transcript line without audio          -> missing_audio
      19-198-0000 (again)    a second transcript line for an id     -> duplicate_id
      26-495-0001            transcript with digits                 -> out_of_alphabet (flagged)
      26-495-0002            empty transcript                       -> empty_text
      26-496-0000.flac       0-byte file                            -> unreadable_audio
      26/stray.flac          audio outside <spk>/<chapter>/          -> missing_transcript
    """
    sub = root / name
    good = {}
    good["19-198-0000"] = write_audio(sub / "19/198/19-198-0000.flac", 0.50, seed=1)
    good["19-198-0001"] = write_audio(sub / "19/198/19-198-0001.flac", 0.75, seed=2)
    write_audio(sub / "19/198/19-198-0002.flac", 0.30, seed=3)
    (sub / "19/198/19-198.trans.txt").write_text(
        "19-198-0000 NORTHANGER ABBEY\n"
        "19-198-0001 CATHERINE MORLAND'S   FATHER\n"
        "19-198-0003 NO AUDIO FOR THIS LINE\n"
        "19-198-0000 A SECOND LINE FOR THE SAME ID\n"
    )
    good["26-495-0000"] = write_audio(sub / "26/495/26-495-0000.wav", 0.40, seed=4)
    good["26-495-0001"] = write_audio(sub / "26/495/26-495-0001.flac", 0.60, seed=5)
    write_audio(sub / "26/495/26-495-0002.flac", 0.20, seed=6)
    (sub / "26/495/26-495.trans.txt").write_text(
        "26-495-0000 THE SHIP SAILED\n26-495-0001 IN 1492 COLUMBUS\n26-495-0002\n"
    )
    (sub / "26/496").mkdir(parents=True)
    (sub / "26/496/26-496-0000.flac").write_bytes(b"")
    (sub / "26/496/26-496.trans.txt").write_text("26-496-0000 AN EMPTY FILE\n")
    write_audio(sub / "26/stray.flac", 0.2, seed=7)
    return good


def kaldi_dir_segments(root: Path) -> tuple[Path, dict[str, tuple[str, float | None, float]]]:
    """A Kaldi data dir with segments, a plain path and a pipe recording.

    Returns (data dir, {utt: (audio spec, offset, duration)}) for the utterances that must be kept.
    Planted: a text line without segment, a segment without text, a segment of an unknown recording,
    a segment with end < start, a failing pipe that must be run (end -1), an archive entry, a missing file,
    a line without value, a recording no segment uses, utterances missing from utt2spk, a duplicate text line.
    Relative paths resolve against ``root`` (pass it as audio_root).
    """
    audio = root / "audio"
    d1 = write_audio(audio / "rec1.wav", 2.0, seed=11)
    d2 = write_audio(audio / "rec2.wav", 1.5, seed=12)
    write_audio(audio / "rec5.wav", 0.5, seed=13)
    data = root / "data" / "train"
    data.mkdir(parents=True)
    pipe = f"cat {audio / 'rec2.wav'} |"
    (data / "wav.scp").write_text(
        f"rec1 {audio / 'rec1.wav'}\n"
        f"rec2 {pipe}\n"
        "rec3 false |\n"
        "rec4 /some/where/feats.ark:1234\n"
        "rec5 audio/rec5.wav\n"
        "rec6 audio/missing.wav\n"
        "rec7\n"
        f"rec9 {audio / 'rec1.wav'}\n"
        "rec10 no-such-program-xyz -f wav x.wv1 |\n"
    )
    (data / "segments").write_text(
        "spkA-rec1-a rec1 0.00 0.80\n"
        "spkA-rec1-b rec1 0.80 1.90\n"
        "spkB-rec2-a rec2 0.50 -1\n"
        "spkB-rec3-a rec3 0.0 -1\n"
        "spkD-rel rec5 0.1 0.4\n"
        "spkE-noprog rec10 0.0 1.0\n"
        "spkB-rec4-a rec4 0.0 1.0\n"
        "spkC-bad rec1 1.5 1.2\n"
        "spkC-nope recX 0.0 1.0\n"
        "spkC-notext rec1 0.1 0.2\n"
        "spkC-missing rec6 0.0 1.0\n"
    )
    (data / "text").write_text(
        "spkA-rec1-a HELLO WORLD\n"
        "spkA-rec1-b good   morning\n"
        "spkB-rec2-a <NOISE> ,COMMA IS SPOKEN\n"
        "spkB-rec3-a PIPE FAILS\n"
        "spkB-rec4-a ARCHIVE\n"
        "spkC-bad BAD TIMES\n"
        "spkC-nope UNKNOWN RECORDING\n"
        "spkC-missing MISSING FILE\n"
        "spkC-nosegment NO SEGMENT\n"
        "spkD-rel RELATIVE PATH\n"
        "spkE-noprog PROGRAM NOT INSTALLED\n"
        "spkA-rec1-a DUPLICATE\n"
    )
    (data / "utt2spk").write_text("spkA-rec1-a spkA\nspkA-rec1-b spkA\nspkC-bad spkC\n")
    keep = {
        "spkA-rec1-a": (str(audio / "rec1.wav"), 0.0, 0.8),
        "spkA-rec1-b": (str(audio / "rec1.wav"), 0.8, 1.1),
        "spkB-rec2-a": (pipe, 0.5, d2 - 0.5),
        "spkD-rel": (str(audio / "rec5.wav"), 0.1, 0.3),
    }
    assert d1 == 2.0
    return data, keep


def wsj_tree(root: Path) -> dict[str, dict[str, str]]:
    """WSJ0/WSJ1 in LDC disk layout (11-*.1/wsj0, 13-*.1/wsj1) with sphere .wv1 audio and .dot transcripts.

    Returns {set: {utt: expected spoken text}} for the utterances that must be kept.
    """
    wsj0 = root / "WSJ0" / "11-1.1" / "wsj0"
    wsj0b = root / "WSJ0" / "11-14.1" / "wsj0"
    wsj1 = root / "WSJ1" / "13-34.1" / "wsj1"
    wsj1b = root / "WSJ1" / "13-16.1" / "wsj1"
    seed = iter(range(100, 200))

    def wv1(path: Path, seconds: float) -> None:
        write_audio(path, seconds, fmt="NIST", seed=next(seed))

    # WSJ0 si_tr_s: speaker 01i (2 utts, transcripts in transcrp/dots), speaker 401 (excluded by definition).
    wv1(wsj0 / "si_tr_s/01i/01ic0201.wv1", 0.5)
    wv1(wsj0 / "si_tr_s/01i/01ic0202.wv1", 0.6)
    wv1(wsj0 / "si_tr_s/01i/01ic0203.wv1", 0.4)  # no transcript anywhere -> missing_transcript
    wv1(wsj0 / "si_tr_s/401/401c0201.wv1", 0.5)
    dots = wsj0 / "transcrp/dots/si_tr_s/01i"
    dots.mkdir(parents=True)
    (dots / "01ic0200.dot").write_text(
        "[loud_breath] Of course there isn\\'t any guarantee the company will keep its hot hand "
        "[door_slam/] (01IC0201)\n"
        'I\\. B\\. M\\. said ,COMMA "DOUBLE-QUOTE the *rebound* is ~ . real [<door_slam] (01IC0202)\n'
    )
    (wsj0 / "transcrp/dots/si_tr_s/401").mkdir(parents=True)
    (wsj0 / "transcrp/dots/si_tr_s/401/401c0200.dot").write_text("Excluded speaker (401C0201)\n")
    # WSJ1 si_tr_s: transcripts beside the audio; one utterance only in an .lsn file.
    wv1(wsj1 / "si_tr_s/4a0/4a0a0101.wv1", 0.7)
    wv1(wsj1 / "si_tr_s/4a0/4a0a0102.wv1", 0.3)
    (wsj1 / "si_tr_s/4a0/4a0a0100.dot").write_text(
        "The <and> market rose %PERCENT so: much --DASH tele(vision)- ok (4A0A0101)\n"
    )
    (wsj1 / "si_tr_s/4a0/4a0a0100.lsn").write_text("FROM THE LSN FILE (4A0A0102)\n")
    # dev93 (si_dt_20, an upper-cased disk copy) and eval92 (si_et_20, with its index file).
    wv1(wsj1b / "SI_DT_20/4K0/4K0C0301.WV1", 0.8)
    (wsj1b / "SI_DT_20/4K0/4K0C0300.DOT").write_text("Stocks fell .POINT five (4K0C0301)\n")
    wv1(wsj0b / "si_et_20/440/440c0201.wv1", 0.9)
    wv1(wsj0b / "si_et_20/440/440c0202.wv1", 0.2)  # not in the index: not part of eval92
    (wsj0b / "si_et_20/440/440c0200.dot").write_text("Eval words here (440C0201)\nNot listed (440C0202)\n")
    ndx = wsj0 / "doc/indices/test/nvp"
    ndx.mkdir(parents=True)
    (ndx / "si_et_20.ndx").write_text(
        ";; Index for the Nov'92 20k NVP test set\n11_14_1:wsj0/si_et_20/440/440c0201\n"
        "11_14_1:wsj0/si_et_20/440/440c0299\n"
    )
    return {
        "si284": {
            "01ic0201": "OF COURSE THERE ISN'T ANY GUARANTEE THE COMPANY WILL KEEP ITS HOT HAND",
            "01ic0202": "I B M SAID COMMA DOUBLE QUOTE THE REBOUND IS REAL",
            "4a0a0101": "THE AND MARKET ROSE PERCENT SO MUCH DASH TELE OK",
            "4a0a0102": "FROM THE LSN FILE",
        },
        "dev93": {"4k0c0301": "STOCKS FELL POINT FIVE"},
        "eval92": {"440c0201": "EVAL WORDS HERE"},
    }


def kaldi_dir_plain(root: Path) -> tuple[Path, dict[str, tuple[str, float]]]:
    """A Kaldi data dir without segments or utt2spk: a file, a pipe, a failing pipe, utt2dur for one."""
    audio = root / "audio"
    d1 = write_audio(audio / "u1.flac", 0.7, seed=21)
    d2 = write_audio(audio / "u2.wav", 0.45, seed=22)
    data = root / "data" / "test"
    data.mkdir(parents=True)
    pipe = f"cat {audio / 'u2.wav'} |"
    wav_scp = f"u1 {audio / 'u1.flac'}\nu2 {pipe}\nu3 false |\nu4 {audio / 'u1.flac'}\n"
    (data / "wav.scp").write_text(wav_scp)
    (data / "text").write_text("u1 FIRST\nu2 SECOND\nu3 THIRD\nu4 FOURTH\n")
    (data / "utt2dur").write_text("u4 3.25\n")  # trusted as given, the file is not opened
    return data, {"u1": (str(audio / "u1.flac"), d1), "u2": (pipe, d2), "u4": (str(audio / "u1.flac"), 3.25)}

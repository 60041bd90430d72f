"""tools/make_results.py reads the committed learning curve (docs/learning_curve.csv), not a run folder."""

from __future__ import annotations

import json

from tests.tools import load_tool

mr = load_tool("make_results")


def test_the_curve_section_is_the_committed_csv_with_its_figure(tmp_path, monkeypatch):
    curve = tmp_path / "curve.csv"
    curve.write_text(
        "run,epoch,step,cpu_hours,real_wer,real_cer,synth_wer,synth_cer\n"
        "a,1,10,0.5,1.25,0.6,0.9,0.4\n"
        "b,1,5,1.234,1.1,0.55,,\n"  # a set not scored for this row
    )
    monkeypatch.setattr(mr, "CURVE", curve)
    monkeypatch.setattr(mr, "FIGURES", tmp_path / "fig")
    text = mr.section_curve()
    lines = text.splitlines()
    assert lines[0] == "| run | epoch | step | trainer CPU-hours | real WER / CER | synth WER / CER |"
    assert lines[2] == "| a | 1 | 10 | 0.50 | 125.0 / 60.0 | 90.0 / 40.0 |"
    assert lines[3] == "| b | 1 | 5 | 1.23 | 110.0 / 55.0 | - / - |"
    assert (tmp_path / "fig" / "results_learning_curve.png").stat().st_size > 1000


def test_a_missing_curve_says_which_command_makes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(mr, "CURVE", tmp_path / "none.csv")
    assert "make_bundle.py --steps curve" in mr.section_curve()


def test_the_phone_curve_shows_greedy_per_and_words_through_the_lm(tmp_path, monkeypatch):
    curve = tmp_path / "phones.csv"
    curve.write_text(
        "run,epoch,step,cpu_hours,real_wer,real_cer,real+lm_wer,real+lm_cer\n"
        "p,1,10,0.5,0.5,,0.95,0.55\n"
        "p,2,20,0.75,0.45,,0.9,0.5\n"
    )
    monkeypatch.setattr(mr, "PHONE_CURVE", curve)
    lines = mr.section_phone_curve().splitlines()
    assert lines[0] == "| run | epoch | step | trainer CPU-hours | real PER (greedy) | real WER / CER (lexicon + LM) |"
    assert lines[2:] == ["| p | 1 | 10 | 0.50 | 50.0 | 95.0 / 55.0 |", "| p | 2 | 20 | 0.75 | 45.0 | 90.0 / 50.0 |"]
    monkeypatch.setattr(mr, "PHONE_CURVE", tmp_path / "none.csv")
    assert "make_bundle.py --steps curve" in mr.section_phone_curve()


def test_the_bundle_section_of_a_phone_bundle_shows_greedy_per(tmp_path, monkeypatch):
    words = {"wer": 0.5, "cer": 0.25, "utterances": 4, "real_time_factor": 0.03}
    phones = {"per": 0.4, "cer": None, "utterances": 4, "real_time_factor": 0.02}
    figures = {"realspeech_dev_greedy": phones, "realspeech_dev_lm": words}
    for key, _ in mr.BUNDLE_SETS:
        for mode in ("full", "stream"):
            figures[f"{key}_greedy_{mode}"], figures[f"{key}_lm_{mode}"] = phones, words
    path = tmp_path / "figures.json"
    path.write_text(json.dumps(figures))
    monkeypatch.setattr(mr, "_load", lambda p: json.loads(path.read_text()))
    text = mr.section_bundle()
    assert "| greedy (phones) | PER 40.0 | PER 40.0 | 0.0200 |" in text
    assert "| lexicon + LM | 50.0 / 25.0 | 50.0 / 25.0 | 0.0300 |" in text
    assert text.endswith("what selection compares): WER 50.0, CER 25.0; greedy: PER 40.0.")


def _study_row(wer: float, per: float, stream: bool = True) -> dict:
    evals = {"test-full": {"wer": wer, "cer": wer / 2}, "test-greedy-full": {"per": per}}
    if stream:
        evals["test-stream"] = {"wer": wer, "cer": wer / 2}
    row = {"description": "d", "params": 3_600_000, "epochs": 4, "steps": 2256, "cpu_seconds": 5400.0, "evals": evals}
    return {**row, "stream_equals_full": [10, 10]} if stream else row


def test_the_study_section_is_the_committed_record_with_the_bar_and_the_comparisons(tmp_path, monkeypatch):
    record = tmp_path / "study.json"
    record.write_text(json.dumps({"linear": _study_row(0.25, 0.20), "softmax": _study_row(0.20, 0.16)}))
    monkeypatch.setattr(mr, "STUDY", record)
    lines = mr.section_study().splitlines()
    assert lines[2] == "| **linear**: d | 3.60 M | 4 (2256) | 1.50 | 20.0 | 25.0 / 12.5 | 25.0 | 10 / 10 | - / - |"
    assert lines[3] == "| improved | not trained yet | | | | | | | |"
    assert "- The bar (synthetic test WER <= 30% for every causal row) is met by every causal row trained so far; " \
           "not trained yet: improved." in lines  # fmt: skip
    assert "- linear against softmax, relative, synthetic test: WER +25.0%, PER +25.0%." in lines
    # with the rows' paired bootstrap (attention_study.against) recorded, the verdict gives its interval
    rows = json.loads(record.read_text())
    rows["linear"]["against"] = {"row": "softmax", "test-full": {"difference": 0.05, "low": -0.01, "high": 0.1,
                                                                 "b_better": 3, "b_worse": 6}}  # fmt: skip
    record.write_text(json.dumps(rows))
    assert ("- linear against softmax, relative, synthetic test: WER +25.0%, PER +25.0%. Paired bootstrap (linear - "
            "softmax, 2,000 resamples): WER +5.00 points (95% interval -1.00 to +10.00; linear better on 3 "
            "utterances, worse on 6).") in mr.section_study().splitlines()  # fmt: skip
    study = {"linear": _study_row(0.35, 0.3), "improved": _study_row(0.2, 0.1), "softmax": _study_row(0.2, 0.1),
             "bidir_linear": _study_row(0.1, 0.1, stream=False)}  # fmt: skip
    record.write_text(json.dumps(study))
    text = mr.section_study()
    assert "is not met: linear (35.0)." in text and "| offline only | - |" in text
    assert "bidir_linear against" not in text  # no bidirectional softmax row to compare with
    record.unlink()
    assert "attention_study.py" in mr.section_study()

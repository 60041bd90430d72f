"""Frame-level distillation end to end: tools/teacher_posteriors.py makes a store of hama's posteriors for the tiny
corpus (resumably), and a phone run with ``distill.weight`` trains on CTC + weight * KL, logged apart."""

from __future__ import annotations

import csv
import math

import pytest
from _train_helpers import train_argv

from asr.cli import main as cli_main
from asr.data.sources import load_utterances
from asr.distill.store import TeacherStore
from asr.text.phones import PhoneTokenizer
from tests.tools import load_tool

pytestmark = pytest.mark.slow


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def store(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "hama"
    tool = load_tool("teacher_posteriors")
    argv = ["--data", str(tiny_corpus["train"]), "--out", str(out), "--model", "phone", "--shard-size", "10",
            "--no-progress"]  # fmt: skip
    assert tool.main(argv) == 0
    shards = sorted(out.glob("shard-*.safetensors"))
    assert len(shards) == 3  # 24 utterances in shards of 10
    stamps = {p: p.stat().st_mtime_ns for p in shards}
    shards[1].unlink()  # a run that stopped: what that shard held is made again, the other shards are kept
    assert tool.main(argv) == 0
    now = sorted(out.glob("shard-*.safetensors"))
    assert len(now) == 3 and all(stamps[p] == p.stat().st_mtime_ns for p in (shards[0], shards[2]))
    assert tool.main(argv) == 0 and sorted(out.glob("shard-*.safetensors")) == now  # nothing left to make
    with pytest.raises(SystemExit, match="another setup"):  # one folder, one setup
        _other_setup(tool, out, tiny_corpus)
    return out


def _other_setup(tool, out, corpus):
    from asr.distill import teacher

    real = teacher.FRAME_SECONDS
    teacher.FRAME_SECONDS = 0.03  # a different setup (as another hama version would be)
    try:
        tool.main(["--data", str(corpus["train"]), "--out", str(out), "--model", "phone", "--no-progress"])
    finally:
        teacher.FRAME_SECONDS = real


def test_the_store_covers_the_corpus_on_the_phone_tokens(store, tiny_corpus):
    teacher = TeacherStore(store, PhoneTokenizer().tokens)
    utts = load_utterances(tiny_corpus["train"])
    assert len(teacher) == len(utts) == 24
    for u in utts[:3]:
        lp = teacher.get(u.id)
        assert lp.shape == (1 + round(u.duration * 16000) // 320, len(PhoneTokenizer().tokens))


def test_a_distilling_run_adds_weight_times_kl_to_ctc(store, tiny_corpus, tmp_path, capsys):
    common = ("data.tokenizer=phone", "max_steps=2", "checkpoint_every_steps=100")  # one loader worker: forked store
    plain, distil = tmp_path / "plain", tmp_path / "distil"
    assert cli_main(train_argv(tiny_corpus, plain, *common)) == 0
    assert cli_main(train_argv(tiny_corpus, distil, *common, f"distill.teacher={store}", "distill.weight=0.5")) == 0
    a, b = _rows(plain / "metrics.csv"), _rows(distil / "metrics.csv")
    assert "distill" not in a[0] and "distill" in b[0]
    kl = float(b[0]["distill"])
    assert math.isfinite(kl) and kl > 0
    # the first step: same weights, same batch, same CTC; the distilling run's loss is 0.5 * KL more
    assert float(b[0]["loss"]) == pytest.approx(float(a[0]["loss"]) + 0.5 * kl, rel=1e-3, abs=1e-3)
    capsys.readouterr()
    assert cli_main(train_argv(tiny_corpus, tmp_path / "bad", *common, "distill.weight=0.5")) != 0
    assert "distill.weight > 0 needs distill.teacher" in capsys.readouterr().err
    other = ("distill.weight=0.5", f"distill.teacher={store}")  # a character run: the store is for phones
    assert cli_main(train_argv(tiny_corpus, tmp_path / "chars", "max_steps=1", "data.num_workers=0", *other)) != 0
    assert "made for the tokens" in capsys.readouterr().err


def test_each_training_set_takes_its_own_distillation_weight(store, tiny_corpus, tmp_path):
    """An extra set's distill_weight overrides distill.weight for its utterances. Same first batch in the three
    runs (plain CTC; main set 0 and extra set 0.5; main set 0.5 and extra set 0). The store was made for the main
    set (tiny train); the extra set (tiny dev) reuses its ids for other audio, whose stored posteriors do not fit
    and are not used. So: main set at 0, the loss is plain CTC with the main set's KL logged; at 0.5, CTC + 0.5 KL."""
    def extra(weight):
        w = "" if weight is None else f", distill_weight: {weight}"
        return f"data.extra_train=[{{manifest: '{tiny_corpus['dev']}', share: 0.3{w}}}]"

    common = ("data.tokenizer=phone", "max_steps=1", "checkpoint_every_steps=100")
    teacher = f"distill.teacher={store}"
    runs = {"ctc": (extra(None),), "main0": (extra(0.5), teacher, "distill.weight=0"),
            "main1": (extra(0), teacher, "distill.weight=0.5")}  # fmt: skip
    rows = {}
    for name, overrides in runs.items():
        assert cli_main(train_argv(tiny_corpus, tmp_path / name, *common, *overrides)) == 0
        rows[name] = _rows(tmp_path / name / "metrics.csv")[0]
    ctc = float(rows["ctc"]["loss"])
    assert "distill" not in rows["ctc"]
    kl0, kl1 = float(rows["main0"]["distill"]), float(rows["main1"]["distill"])
    assert kl0 > 0 and kl0 == pytest.approx(kl1, rel=1e-4)  # the same batch, the same KL logged
    assert float(rows["main0"]["loss"]) == pytest.approx(ctc, rel=1e-5)
    assert float(rows["main1"]["loss"]) == pytest.approx(ctc + 0.5 * kl1, rel=1e-4)

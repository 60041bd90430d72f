"""asr.distill: hama's posteriors on a phone model's tokens, the shard store, the teacher's frames put on the
student's, and the KL term against a plain numpy reference (values and gradients)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.distill.loss import distill_loss, student_targets
from asr.distill.store import TeacherStore, plan_shards, write_shard
from asr.distill.teacher import FRAME_SECONDS, HamaTeacher, token_map
from asr.peers.hama import IPA_TO_ARPABET
from asr.scoring import score_utterance
from asr.text.chars import CharTokenizer
from asr.text.phones import PhoneTokenizer

REPO = Path(__file__).resolve().parents[3]
PHONES = PhoneTokenizer().tokens


def test_token_map_sends_each_hama_token_to_one_student_token():
    hama = ["<pad>", "<unk>", "ː", "ŋ", "eə", "t͡ʃ", "ㄱ", "<wb>", "<blank>"]
    index, unmapped = token_map(hama, PHONES)
    got = [PHONES[i] for i in index]
    assert got == ["<blank>", "<blank>", "<blank>", "NG", "EH", "CH", "<blank>", "<blank>", "<blank>"]
    assert unmapped.tolist() == [False, False, False, False, False, False, True, False, False]  # only the foreign one
    with_boundary = PhoneTokenizer(word_boundary=True).tokens
    index, _ = token_map(hama, with_boundary)
    assert with_boundary[index[7]] == "|" and with_boundary[index[8]] == "<blank>"
    with pytest.raises(ValueError, match="lack the phones"):
        token_map(hama, CharTokenizer().tokens)
    # every IPA phone hama may emit reaches its first ARPAbet phone
    index, _ = token_map(list(IPA_TO_ARPABET), PHONES)
    assert [PHONES[i] for i in index] == [v[0] for v in IPA_TO_ARPABET.values()]


def test_hama_teacher_hears_the_bundled_real_clip():
    x, sr = sf.read(REPO / "asr/assets/audio/real/goforward.flac", dtype="float32")
    assert sr == 16000
    teacher = HamaTeacher(PHONES)
    out = teacher(x)
    assert out.log_probs.shape == (1 + len(x) // 320, len(PHONES))  # one frame per 20 ms
    np.testing.assert_allclose(np.exp(out.log_probs).sum(axis=1), 1.0, atol=1e-5)
    assert 0.0 <= out.unmapped_mass < 0.01
    best = [PHONES[i] for i in out.log_probs.argmax(axis=1)]
    phones = [p for k, p in enumerate(best) if p != "<blank>" and (k == 0 or best[k - 1] != p)]
    ref = PhoneTokenizer().phones("GO FORWARD TEN METERS")
    assert score_utterance("", ref, " ".join(phones)).counts.rate < 0.2, phones
    assert teacher.setup["tokens"] == PHONES and teacher.setup["frame_seconds"] == FRAME_SECONDS
    with pytest.raises(ValueError, match="no audio"):
        teacher(np.zeros(0, dtype=np.float32))


def _fake(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(PHONES)))
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def test_store_shards_round_trip_resume_and_refuse_other_tokens(tmp_path):
    setup = {"teacher": "fake", "frame_seconds": 0.02, "tokens": PHONES}
    ids = [f"u{k:02d}" for k in range(7)]
    shards = plan_shards(ids[::-1], setup, size=3)
    assert [s[1] for s in shards] == [ids[0:3], ids[3:6], ids[6:7]]  # sorted, cut in order
    assert plan_shards(ids, setup, size=3) == shards  # the same names again: how a writer resumes
    assert plan_shards(ids, {**setup, "teacher": "other"}, size=3)[0][0] != shards[0][0]
    data = {i: _fake(5 + k, k) for k, i in enumerate(ids)}
    for name, part in shards:
        write_shard(tmp_path / name, {i: data[i] for i in part}, setup)
    assert not list(tmp_path.glob("*.tmp*"))
    store = TeacherStore(tmp_path, PHONES)
    assert len(store) == 7 and "u03" in store and "zz" not in store and store.frame_seconds == 0.02
    np.testing.assert_allclose(store.get("u04"), data["u04"], atol=2e-3)  # float16 on disk
    assert store.get("zz") is None
    again = pickle.loads(pickle.dumps(store))  # a spawned loader worker opens its own handles
    np.testing.assert_array_equal(again.get("u06"), store.get("u06"))
    with pytest.raises(ValueError, match="made for the tokens"):
        TeacherStore(tmp_path, PhoneTokenizer(word_boundary=True).tokens)
    with pytest.raises(FileNotFoundError, match="teacher_posteriors.py"):
        TeacherStore(tmp_path / "nope", PHONES)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no shard"):
        TeacherStore(tmp_path / "empty", PHONES)


def _frames(*rows: dict[int, float]) -> np.ndarray:
    """Teacher frames from {token: probability} rows; blank (0) takes the rest."""
    out = np.zeros((len(rows), 4))
    for k, r in enumerate(rows):
        for t, p in r.items():
            out[k, t] = p
        out[k, 0] = 1.0 - sum(r.values())
    return np.log(np.maximum(out, 1e-30))


def test_student_targets_pool_spikes_the_ctc_way():
    teacher = _frames({1: 1.0}, {}, {}, {2: 0.6}, {2: 0.3, 3: 0.6}, {3: 0.9})
    # 40 ms student frames over 20 ms teacher frames: pairs; non-blank mass summed, scaled to one when over
    t, mask = student_targets(teacher, 3, frame_seconds=0.04, teacher_frame_seconds=0.02)
    assert mask.tolist() == [True, True, True]
    np.testing.assert_allclose(t[0], [0.0, 1.0, 0.0, 0.0], atol=1e-6)  # a spike stays a spike (not halved)
    np.testing.assert_allclose(t[1], [0.4, 0.0, 0.6, 0.0], atol=1e-6)
    np.testing.assert_allclose(t[2], [0.0, 0.0, 0.3 / 1.8, 1.5 / 1.8], atol=1e-6)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-6)
    # a delay shifts the targets later; the first frames have none; frames past the teacher's end have none
    t2, mask2 = student_targets(teacher, 5, frame_seconds=0.04, teacher_frame_seconds=0.02, delay_frames=1)
    assert mask2.tolist() == [False, True, True, True, False]
    np.testing.assert_allclose(t2[1:4], t, atol=1e-6)
    # speed 1.5: the student heard the audio 1.5x faster, so each of its frames covers 3 teacher frames
    t3, mask3 = student_targets(teacher, 2, frame_seconds=0.04, teacher_frame_seconds=0.02, speed=1.5)
    assert mask3.tolist() == [True, True]
    np.testing.assert_allclose(t3[0], [0.0, 1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(t3[1], [0.0, 0.0, 0.9 / 2.4, 1.5 / 2.4], atol=1e-6)
    with pytest.raises(ValueError, match="delay_frames"):
        student_targets(teacher, 3, frame_seconds=0.04, teacher_frame_seconds=0.02, delay_frames=-1)


def test_distill_loss_is_kl_per_utterance_with_its_gradient():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.standard_normal((2, 5, 4)), requires_grad=True)
    log_probs = torch.log_softmax(logits, dim=-1)
    target = np.abs(rng.standard_normal((4, 4)))
    target /= target.sum(axis=1, keepdims=True)
    target[1] = [1.0, 0.0, 0.0, 0.0]  # zeros: 0 log 0 = 0
    mask = np.array([True, True, False, True])
    loss, frames = distill_loss(log_probs, [(target.astype(np.float32), mask), None])
    assert frames == 3
    s = log_probs.detach().numpy()[0, :4][mask]
    t = target.astype(np.float32).astype(np.float64)[mask]
    ref = (np.where(t > 0, t * np.log(np.maximum(t, 1e-30)), 0.0) - t * s).sum() / 2  # per utterance, batch of 2
    assert loss.item() == pytest.approx(ref, rel=1e-6)
    loss.backward()
    # d KL / d logits = (softmax - target) / B on the target frames, zero elsewhere
    want = np.zeros((2, 5, 4))
    p = np.exp(log_probs.detach().numpy())
    rows = np.flatnonzero(mask)
    want[0, rows] = (p[0, rows] - t) / 2
    np.testing.assert_allclose(logits.grad.numpy(), want, atol=1e-6)
    # a student that is the target: zero loss
    same = torch.log(torch.tensor(target[None].astype(np.float64)).clamp_min(1e-30))
    zero, _ = distill_loss(same, [(target.astype(np.float32), np.ones(4, dtype=bool))])
    assert abs(zero.item()) < 1e-6


def test_measure_delay_finds_where_the_student_follows_the_teacher(tmp_path):
    """tools/teacher_posteriors.py --measure-delay on the bundled real clips with the bundled phone model: a row per
    delay, the best the lowest KL, and a causal student that emits at most a few frames after hama."""
    import json

    from tests.tools import load_tool

    tool = load_tool("teacher_posteriors")
    out = tmp_path / "delay"
    argv = ["--measure-delay", "--data", str(REPO / "asr/assets/audio/real.jsonl"), "--out", str(out),
            "--max-delay", "4", "--max-utterances", "6", "--no-progress"]  # fmt: skip
    assert tool.main(argv) == 0
    report = json.loads((out / "delay.json").read_text())
    rows = report["rows"]
    assert [r["delay_frames"] for r in rows] == [0, 1, 2, 3, 4] and report["utterances"] == 6
    assert all(np.isfinite(r["kl_per_frame"]) and 0 <= r["argmax_agreement"] <= 1 and r["frames"] > 0 for r in rows)
    best = min(rows, key=lambda r: r["kl_per_frame"])
    assert report["best_delay_frames"] == best["delay_frames"] <= 2
    assert rows[0]["frames"] > rows[4]["frames"]  # a delay leaves the first frames without a target


def test_distill_loss_weights_each_utterance():
    """Per-utterance weights (a training set's own distill_weight): the weighted sum of the utterances' KLs."""
    rng = np.random.default_rng(1)
    log_probs = torch.log_softmax(torch.tensor(rng.standard_normal((3, 4, 5))), dim=-1)
    items = []
    for _ in range(3):
        t = np.abs(rng.standard_normal((4, 5)))
        items.append(((t / t.sum(axis=1, keepdims=True)).astype(np.float32), np.ones(4, dtype=bool)))
    each = [distill_loss(log_probs[b : b + 1], [items[b]])[0].item() for b in range(3)]  # each alone: its KL
    weighted, frames = distill_loss(log_probs, items, weights=[0.0, 0.5, 2.0])
    assert frames == 12
    assert weighted.item() == pytest.approx((0.5 * each[1] + 2.0 * each[2]) / 3, rel=1e-6)
    assert distill_loss(log_probs, items)[0].item() == pytest.approx(sum(each) / 3, rel=1e-6)

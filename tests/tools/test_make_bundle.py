"""tools/make_bundle.py and tools/make_lm_bundle.py with a phone model: the LM folder must be made for the model's
tokens, the model card must say what a phone bundle prints, and a resumed phase keeps its warm start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from asr.features import FbankConfig, GlobalCMVN
from asr.lm.folder import write_lm_json
from asr.model.config import ModelConfig
from asr.model.ctc import CTCModel
from asr.pipeline import AsrModel, save_asr_model
from asr.text.chars import CharTokenizer
from asr.text.phones import PhoneTokenizer
from tests.tools import load_tool


def _tiny(tokenizer) -> AsrModel:
    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, num_layers=1, num_heads=2, ff_dim=32,
                      subsampling_channels=4, conv_kernel_size=3, dropout=0.0)  # fmt: skip
    torch.manual_seed(0)
    cmvn = GlobalCMVN(mean=torch.zeros(80), std=torch.ones(80), count=1)
    return AsrModel(model=CTCModel(cfg).eval(), tokenizer=tokenizer, cmvn=cmvn, features=FbankConfig())


def _folder_for(path, tokenizer) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "lexicon.txt").write_text("")
    write_lm_json(path, {"lm": None, "lexicon": "lexicon.txt", "decoder": {},
                         "tokenizer": {"kind": tokenizer.kind, "tokens": list(tokenizer.tokens)}})  # fmt: skip


def test_tune_only_refuses_a_folder_made_for_other_tokens(tmp_path, capsys):
    tool = load_tool("make_lm_bundle")
    model = save_asr_model(tmp_path / "phone.safetensors", _tiny(PhoneTokenizer()))
    _folder_for(tmp_path / "lm", CharTokenizer())
    with pytest.raises(SystemExit) as exc:
        tool.main(["--model", str(model), "--out", str(tmp_path / "lm"), "--tune-only"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "was made for the tokens" in err and "AA AE AH" in err  # both token sets are named
    with pytest.raises(SystemExit):
        tool.main(["--model", str(model), "--out", str(tmp_path / "none"), "--tune-only"])
    assert "holds no LM folder" in capsys.readouterr().err
    assert tool.folder_tokens(tmp_path / "lm") == tuple(CharTokenizer().tokens)
    assert tool.folder_tokens(tmp_path / "none") is None


def test_a_phone_candidate_is_decoded_with_a_folder_for_its_tokens(tmp_path, monkeypatch):
    tool = load_tool("make_bundle")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    monkeypatch.setattr(tool, "ASSETS", tmp_path / "assets")
    char_model = save_asr_model(tmp_path / "char.safetensors", _tiny(CharTokenizer()))
    phone_model = save_asr_model(tmp_path / "phone.safetensors", _tiny(PhoneTokenizer()))
    _folder_for(tmp_path / "assets" / "model", CharTokenizer())  # the bundled folder, for characters
    built: list[list[str]] = []

    def build(cmd):  # what make_lm_bundle --no-install would leave
        built.append(cmd)
        _folder_for(tmp_path / cmd[cmd.index("--out") + 1], PhoneTokenizer())

    monkeypatch.setattr(tool, "_sh", build)
    assert tool._lm_for(char_model.relative_to(tmp_path)) == tmp_path / "assets" / "model"
    assert built == []
    folder = tool._lm_for(phone_model.relative_to(tmp_path))
    assert str(folder) == "runs/lm-bundle-phone" and len(built) == 1
    assert "--no-install" in built[0] and "--model" in built[0]
    assert tool._lm_for(phone_model.relative_to(tmp_path)) == folder and len(built) == 1  # reused while it fits


def test_the_model_card_of_a_phone_bundle_says_what_it_prints():
    tool = load_tool("make_bundle")
    figure = {"wer": 0.5, "cer": 0.25, "utterances": 3, "real_time_factor": 0.02}
    per = {"per": 0.4, "cer": None, "utterances": 3, "real_time_factor": 0.02}  # asr eval's phone summary
    figures = {"realspeech_dev_greedy": per, "realspeech_dev_lm": figure}
    for name in tool.TEST_SETS:
        for mode in ("full", "stream"):
            figures[f"{name}_greedy_{mode}"], figures[f"{name}_lm_{mode}"] = per, figure
    card = tool._model_card(_tiny(PhoneTokenizer()), figures)
    assert "CTC head over CMUdict phones" in card and "prints phone strings, not words" in card
    assert "| greedy (phones) | 3 | PER 40.0 | PER 40.0 | 0.0200 |" in card
    assert "| lexicon + LM | 3 | 50.0 / 25.0 | 50.0 / 25.0 | 0.0200 |" in card
    assert "every CMUdict pronunciation" in card and "nan" not in card
    char_card = tool._model_card(_tiny(CharTokenizer()), {k: figure for k in figures})
    assert "CTC head over characters" in char_card and "the char tokenizer" in char_card
    assert "PER " not in char_card and "CMUdict" not in char_card and "greedy (phones)" not in char_card
    assert "`recipes/synth/world_long.yaml`" in char_card and "Phone phases" not in char_card


def test_the_model_card_names_the_phases_a_phone_bundle_went_through():
    load_tool("make_bundle")  # puts the card module, its sibling, in sys.modules
    from _model_card import _phone_phases

    later = _phone_phases("runs/phones-distill-real/final.safetensors")
    assert later.index("targets_phone.yaml") < later.index("phones_world.yaml") < later.index("phones_real.yaml")
    assert "phones_distill_real.yaml" in later and "from phones2's epoch 3" in later
    early = _phone_phases("runs/phones1/checkpoints/epoch-009.safetensors")
    assert "phones_world.yaml" in early and "phones_real.yaml" not in early
    assert "phones_real.yaml" in _phone_phases("see docs/results.md")  # no run known: the whole list
    grown = _phone_phases("runs/grow16/final.safetensors")  # a follow-up of a follow-up: both, in order
    assert grown.index("phones_kokoro.yaml` (one epoch") < grown.index("grow_model.py") < grown.index("phones_grow16")
    varied = _phone_phases("runs/kvaried1/final.safetensors")
    assert varied.index("phones_kokoro.yaml` (one epoch") < varied.index("phones_kokoro_varied.yaml")
    assert "grow_model.py" not in varied
    blend = _phone_phases("runs/kblend1/final.safetensors")  # three follow-ups deep
    assert (blend.index("phones_kokoro.yaml` (one epoch") < blend.index("phones_kokoro_varied.yaml")
            < blend.index("phones_kokoro_blend.yaml"))
    again = _phone_phases("runs/kvctl1/final.safetensors")  # the bundle's recipe run a second time
    assert again.index("phones_kokoro_varied.yaml` (2,400") < again.index("phones_kokoro_varied.yaml` again")


def test_a_resumed_phase_keeps_its_warm_start_and_select_can_be_pointed(tmp_path, monkeypatch):
    tool = load_tool("make_bundle")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    run = tmp_path / "runs" / "phones1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("init_from: runs/start.safetensors\n")
    with pytest.raises(SystemExit, match="is gone"):
        tool._recorded_init(tool.PHONES1)
    (tmp_path / "runs" / "start.safetensors").write_bytes(b"x")
    assert tool._recorded_init(tool.PHONES1) == "runs/start.safetensors"
    (run / "config.yaml").write_text("init_from: null\n")
    with pytest.raises(SystemExit, match="no init_from"):
        tool._recorded_init(tool.PHONES1)
    assert tool._selection_run() == tool.PHONES1  # the newest phase started
    args = type("A", (), {"select_from": "runs/world3"})()
    assert str(tool._selection_run(args)) == "runs/world3"
    (tmp_path / "runs" / "phones2" / "checkpoints").mkdir(parents=True)
    assert tool._selection_run() == tool.PHONES2


def test_the_second_phone_phase_starts_from_the_first_ones_best_dev_epoch(tmp_path, monkeypatch):
    tool = load_tool("make_bundle")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    run = tmp_path / "runs" / "phones1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "dev_sets.csv").write_text(
        "epoch,step,set,utterances,wer,cer,trainer_cpu_s\n"
        "1,10,realspeech-dev,327,0.50,nan,1\n1,10,synth-dev,9,0.10,nan,1\n"
        "2,20,realspeech-dev,327,0.45,nan,2\n3,30,realspeech-dev,327,0.44,nan,3\n4,40,realspeech-dev,327,0.44,nan,4\n"
    )
    with pytest.raises(SystemExit, match="no epoch checkpoint"):
        tool._best_dev_epoch(tool.PHONES1)
    for e in (1, 2, 4):  # epoch 3's checkpoint was deleted
        (run / "checkpoints" / f"epoch-{e:03d}.safetensors").write_bytes(b"x")
    assert tool._best_dev_epoch(tool.PHONES1) == tool.PHONES1 / "checkpoints" / "epoch-004.safetensors"
    (run / "checkpoints" / "epoch-003.safetensors").write_bytes(b"x")
    assert tool._best_dev_epoch(tool.PHONES1).name == "epoch-003.safetensors"  # a tie: the earlier epoch

    # step phones: phones1 resumed (its recorded start), then phones2 from that epoch
    (run / "config.yaml").write_text("init_from: runs/start.safetensors\n")
    (tmp_path / "runs" / "start.safetensors").write_bytes(b"x")
    calls, commands = [], []
    monkeypatch.setattr(tool, "_train", lambda recipe, run, *o: calls.append((recipe, str(run), *o)))
    monkeypatch.setattr(tool, "_sh", lambda cmd: commands.append(cmd))
    monkeypatch.setattr(tool, "_bundle_kind", lambda: "phone")
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"bundle")
    monkeypatch.setattr(tool, "MODEL", model)
    tool.step_phones(None)
    assert calls == [
        ("recipes/synth/phones_world.yaml", "runs/phones1", "init_from=runs/start.safetensors"),
        ("recipes/synth/phones_real.yaml", "runs/phones2", "init_from=runs/phones1/checkpoints/epoch-003.safetensors"),
        ("recipes/synth/phones_distill.yaml", "runs/phones-distill", "init_from=runs/phones-distill.init.safetensors"),
        ("recipes/synth/phones_real.yaml", "runs/phones3", "init_from=runs/phones3.init.safetensors"),
        ("recipes/synth/phones_distill_real.yaml", "runs/phones-distill-real",
         "init_from=runs/phones-distill-real.init.safetensors"),
    ]  # fmt: skip
    # the distillation phases make (or complete) the teacher store first; phases 3-5 start from bundle copies
    assert len(commands) == 2 and all(c[1] == "tools/teacher_posteriors.py" for c in commands)
    assert all(c[c.index("--out") + 1] == "data/teacher/hama" for c in commands)
    manifests = [[c[i + 1] for i, a in enumerate(c) if a == "--data"] for c in commands]
    assert sorted(manifests[0]) == ["data/manifests/synth_train_all.jsonl", "data/realspeech/realspeech-train.jsonl"]
    assert manifests[1] == ["data/realspeech/realspeech-train.jsonl"]  # phase 5 distils the real recordings only
    for copy in (tool.PHONES_DISTILL_INIT, tool.PHONES3_INIT, tool.PHONES_DISTILL_REAL_INIT):
        assert (tmp_path / copy).read_bytes() == b"bundle"
    # a fresh machine with a phone bundle: no phones1, so no phones2 (its result is the bundle); 3 and 4 from it
    import shutil

    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "runs").mkdir()
    calls.clear()
    tool.step_phones(None)
    assert [c[1] for c in calls] == ["runs/phones-distill", "runs/phones3", "runs/phones-distill-real"]
    # a resumed phase keeps the start it recorded, even after the bundle changed
    (tmp_path / "runs" / "phones-distill").mkdir()
    start = "runs/phones-distill.init.safetensors"
    (tmp_path / "runs" / "phones-distill" / "config.yaml").write_text(f"init_from: {start}\n")
    model.write_bytes(b"newer bundle")
    calls.clear()
    tool.step_phones(None)
    assert calls[0][-1] == f"init_from={start}" and (tmp_path / start).read_bytes() == b"bundle"
    (tmp_path / "runs" / "phones2" / "checkpoints").mkdir(parents=True)
    assert tool._selection_run() == tool.PHONES2  # the later phases have no checkpoint yet
    (tmp_path / "runs" / "phones-distill" / "checkpoints").mkdir()
    assert tool._selection_run() == tool.PHONES_DISTILL
    (tmp_path / "runs" / "phones3" / "checkpoints").mkdir(parents=True)
    assert tool._selection_run() == tool.PHONES3
    # a fresh machine skips a phase whose every epoch the committed curve holds (phones_distill.yaml: 5 epochs);
    # phones3 has 2 of its 5, phones-distill-real none of its 1, then it
    history = tmp_path / tool.PHONE_CURVE_HISTORY
    history.parent.mkdir()
    history.write_text("run,epoch,step\n" + "".join(f"phones-distill,{e},{e}\n" for e in (1, 2, 3, 4, 5))
                       + "phones3,1,1\nphones3,2,2\n")  # fmt: skip
    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "runs").mkdir()
    calls.clear()
    tool.step_phones(None)
    assert [c[1] for c in calls] == ["runs/phones3", "runs/phones-distill-real"]
    history.write_text(history.read_text() + "phones-distill-real,1,1\n")  # its one epoch
    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "runs").mkdir()
    calls.clear()
    tool.step_phones(None)
    assert [c[1] for c in calls] == ["runs/phones3"]


def test_sentence_wer_counts_only_utterances_of_four_words_or_more(tmp_path, monkeypatch):
    tool = load_tool("make_bundle")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    rows = [
        {"hits": 1, "substitutions": 0, "deletions": 0, "insertions": 3},  # one word: not counted
        {"hits": 3, "substitutions": 1, "deletions": 0, "insertions": 1},  # 4 words, 2 errors
        {"hits": 2, "substitutions": 2, "deletions": 2, "insertions": 0},  # 6 words, 4 errors
    ]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "utterances.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert tool._sentence_wer(Path("out")) == {"wer": 0.6, "words": 10, "utterances": 2}


def test_the_sentence_condition_allows_one_standard_error():
    tool = load_tool("make_bundle")
    se = tool._noise({"wer": 0.7681, "words": 207, "utterances": 35})
    assert abs(se - (0.7681 * 0.2319 / 207) ** 0.5) < 1e-12 and 0.028 < se < 0.03
    assert tool._noise({"wer": 1.3, "words": 10, "utterances": 2}) == 0.0  # WER above 1: clipped, no allowance
    assert tool._noise({"wer": float("nan"), "words": 0, "utterances": 0}) == 0.0


def test_cached_scores_are_keyed_by_the_dev_set_and_the_tail_padding(tmp_path, monkeypatch):
    import asr.pipeline

    tool = load_tool("make_bundle")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    (tmp_path / tool.REAL_DEV).parent.mkdir(parents=True)
    (tmp_path / tool.REAL_DEV).write_text('{"id": "a"}\n')
    key = tool._dev_key()
    assert key.endswith(f"-tp{round(1000 * asr.pipeline.TAIL_PADDING_SECONDS)}")  # scores decoded with the padding
    monkeypatch.setattr(asr.pipeline, "TAIL_PADDING_SECONDS", 0.0)
    assert tool._dev_key() == key.split("-tp")[0] and "-" not in tool._dev_key()  # the keys of before
    (tmp_path / tool.REAL_DEV).write_text('{"id": "b"}\n')
    assert tool._dev_key() != key.split("-tp")[0]


def test_the_start_point_of_a_phase_for_the_learning_curve(tmp_path, monkeypatch):
    """Where a phase's CPU-hours continue from: its recorded epoch checkpoint, or for a copy of the bundle the
    checkpoint the bundle came from (recorded at install, or found through its training config)."""
    import asr.pipeline

    tool = load_tool("make_bundle")
    monkeypatch.setattr(tool, "ROOT", tmp_path)

    def run(name, init):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "config.yaml").write_text(f"init_from: {init}\n")
        return Path("runs") / name

    assert tool._start_point(run("p2", "runs/p1/checkpoints/epoch-009.safetensors")) == ("p1", 9)
    distill = run("d", "runs/d.init.safetensors")
    assert tool._start_point(distill) is None  # the copy is gone: nothing to tell
    (tmp_path / "runs" / "d.init.safetensors").write_bytes(b"x")
    extra = {"source": "runs/p2/checkpoints/epoch-003.safetensors"}
    monkeypatch.setattr(asr.pipeline, "load_asr_model", lambda path: type("M", (), {"extra": extra})())
    assert tool._start_point(distill) == ("p2", 3)
    extra = {"train_config": {"init_from": "runs/p1/checkpoints/epoch-009.safetensors"}, "position": {"epoch": 3}}
    assert tool._start_point(distill) == ("p2", 3)  # a bundle installed before install recorded its source
    extra = {}
    assert tool._start_point(distill) is None
    # a fresh machine (no run shares the bundle's init_from): a copy of the committed bundle came from where its card
    # says; another file does not
    model, assets = tmp_path / "model.safetensors", tmp_path / "assets"
    (assets / "model").mkdir(parents=True)
    card = "- Phone phases ... This file: `runs/p2/checkpoints/epoch-003.safetensors`."
    (assets / "model" / "README.md").write_text(card)
    model.write_bytes(b"x")
    monkeypatch.setattr(tool, "MODEL", model)
    monkeypatch.setattr(tool, "ASSETS", assets)
    assert tool._start_point(distill) == ("p2", 3)
    model.write_bytes(b"another bundle")
    assert tool._start_point(distill) is None
    # a bundle installed from a run's final weights (max_steps stopped it inside an epoch): that run's last row of the
    # curve, where learning_curve.py scored those weights; a run the history does not hold cannot be told
    history = tmp_path / "docs" / "learning_curve_phones.csv"
    history.parent.mkdir()
    history.write_text("run,epoch,step,cpu_hours\np2,1,900,1.0\np3,1,700,1.5\np3,2,1400,2.0\n")
    extra = {"source": "runs/p3/final.safetensors"}
    assert tool._start_point(distill) == ("p3", 2)
    extra = {"source": "runs/p4/final.safetensors"}
    assert tool._start_point(distill) is None


@pytest.mark.parametrize(("given", "passed"), [("all", "all"), ("12", "12")])
def test_make_lm_bundle_passes_the_token_limit_to_the_tuner(tmp_path, monkeypatch, given, passed):
    tool = load_tool("make_lm_bundle")
    model = save_asr_model(tmp_path / "phone.safetensors", _tiny(PhoneTokenizer()))
    _folder_for(tmp_path / "lm", PhoneTokenizer())
    ran: list[list[str]] = []
    monkeypatch.setattr(tool, "_run", ran.append)
    tool.main(["--model", str(model), "--out", str(tmp_path / "lm"), "--tune-only", "--no-install",
               "--beam-tokens", given])  # fmt: skip
    assert len(ran) == 1 and f"--beam-token-limits={passed}" in ran[0]
    with pytest.raises(SystemExit):
        tool.main(["--model", str(model), "--out", str(tmp_path / "lm"), "--tune-only", "--beam-tokens", "some"])


def test_select_tunes_a_candidate_as_the_shipped_weights_are_tuned(tmp_path, monkeypatch):
    """The committed model and a candidate are compared at the weights each would ship with: select's tuning has
    make_lm_bundle's grid and dev utterances, and it and the scoring use the shipped search (beam, phones a frame,
    threshold)."""
    lm_tool = load_tool("make_lm_bundle")
    tool = load_tool("make_bundle")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    monkeypatch.setattr(tool, "ASSETS", tmp_path / "assets")
    model = save_asr_model(tmp_path / "phone.safetensors", _tiny(PhoneTokenizer()))
    _folder_for(tmp_path / "assets" / "model", PhoneTokenizer())
    (tmp_path / tool.REAL_DEV).parent.mkdir(parents=True)
    (tmp_path / tool.REAL_DEV).write_text("")
    ran: list[list[str]] = []

    def fake(cmd):  # tune_lm leaves its grid, asr eval its summary and utterances
        ran.append(cmd)
        out = tmp_path / cmd[cmd.index("--out") + 1]
        out.mkdir(parents=True)
        if "tools/tune_lm.py" in cmd:
            (out / "grid.json").write_text(json.dumps({"best": {"lm_weight": 2.5, "word_score": -2.0,
                                                                "blank_penalty": 2.0}}))  # fmt: skip
        else:
            (out / "summary.json").write_text(json.dumps({"wer": 0.5, "cer": 0.25}))
            (out / "utterances.jsonl").write_text("")

    monkeypatch.setattr(tool, "_sh", fake)
    scored = tool._tuned_dev_score(model.relative_to(tmp_path), "candidate")
    assert scored["tuned"] == {"lm_weight": 2.5, "word_score": -2.0, "blank_penalty": 2.0}
    tune, score = ran

    shipped: list[list[str]] = []
    monkeypatch.setattr(lm_tool, "_run", shipped.append)
    lm_tool.main(["--model", str(model), "--out", str(tmp_path / "assets" / "model"), "--tune-only", "--no-install"])

    def flags(cmd, *names):
        return [next(a.split("=", 1)[1] if "=" in a else cmd[i + 1] for i, a in enumerate(cmd) if a.split("=")[0] == n)
                for n in names]  # fmt: skip

    assert flags(tune, "--lm-weights", "--word-scores", "--blank-penalties", "--max-utterances") == flags(
        shipped[0], "--lm-weights", "--word-scores", "--blank-penalties", "--max-utterances"
    ) == ["1.5,2,2.5,3", "-3,-2,-1", "0.5,1,2", "250"]
    search = [str(lm_tool.BEAM), str(lm_tool.BEAM_TOKENS), str(lm_tool.BEAM_THRESHOLD)]
    assert flags(shipped[0], "--beams", "--beam-token-limits", "--beam-thresholds") == search
    assert flags(tune, "--beam", "--beam-tokens", "--beam-threshold") == search
    assert flags(score, "--beam", "--beam-tokens", "--beam-threshold", "--lm-weight") == [*search, "2.5"]

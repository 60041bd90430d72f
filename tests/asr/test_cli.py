"""The ``asr`` command line: help, version, clear errors for bad recipes and missing models, ``asr plot``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import asr
from asr import pipeline
from asr.cli import COMMANDS
from asr.cli import main as cli_main
from asr.commands.plot import _read_csv

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "synth" / "tiny.yaml"


def test_help_lists_every_command_without_importing_torch():
    code = (
        "import sys\nfrom asr.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch imported' if 'torch' in sys.modules else 'torch not imported')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("train", "eval", "transcribe", "plot", *COMMANDS):
        assert name in out
    assert out.strip().endswith("torch not imported")


def test_version():
    out = subprocess.run([sys.executable, "-m", "asr.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"transcurrent {asr.__version__}"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.bogus_width=3", "model.bogus_width"),
        ("optim.lr=fast", "optim.lr"),
        ("epocs=3", "epocs"),
        ("model.attention=quadratic", "model: attention='quadratic'"),
        ("data.tokenizer=words", "data.tokenizer"),
        ("optim.lr", "key=value"),
    ],
)
def test_train_rejects_bad_overrides_naming_them(override, named, tmp_path, capsys):
    assert cli_main(["train", str(TINY), override, "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "error" in err and named in err
    assert not (tmp_path / "run").exists()  # nothing started


def test_train_rejects_a_bad_key_inside_a_recipe_file(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(yaml.safe_dump({"base": str(TINY), "optim": {"lrr": 0.1}}))
    assert cli_main(["train", str(recipe), "--run-dir", str(tmp_path / "run")]) == 2
    assert "optim.lrr" in capsys.readouterr().err
    assert cli_main(["train", str(tmp_path / "missing.yaml"), "--run-dir", str(tmp_path / "run")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_print_config_resolves_base_chain_and_overrides(tmp_path, capsys):
    argv = [
        "train",
        str(TINY),
        "model.num_layers=3",
        "--run-dir",
        str(tmp_path / "r"),
        "optim.lr=2e-4",  # overrides may also follow the options
        "--print-config",
    ]
    assert cli_main(argv) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    tiny = yaml.safe_load(TINY.read_text())
    base = yaml.safe_load((TINY.parent / tiny["base"]).read_text())
    assert config["model"]["num_layers"] == 3 and config["optim"]["lr"] == 2e-4  # command line
    assert config["model"]["d_model"] == tiny["model"]["d_model"]  # tiny.yaml
    assert config["data"]["tokenizer"] == base["data"]["tokenizer"]  # base.yaml
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["eval", "transcribe"])
def test_a_missing_model_without_a_bundled_one_is_a_clear_error(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "BUNDLED_MODEL_DIR", tmp_path / "assets" / "model")
    argv = ["eval", "--data", str(tmp_path)] if command == "eval" else ["transcribe", str(tmp_path / "a.wav")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "no bundled model is installed yet" in err and "--model" in err


def test_model_resolution(tmp_path):
    bundled = tmp_path / "assets" / "model"
    bundled.mkdir(parents=True)
    with pytest.raises(ValueError, match="no bundled model"):
        pipeline.resolve_model_path(None, bundled_dir=bundled)
    (bundled / "model.safetensors").write_bytes(b"")
    assert pipeline.resolve_model_path(None, bundled_dir=bundled) == bundled / "model.safetensors"
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ValueError, match="final.safetensors"):
        pipeline.resolve_model_path(run)
    (run / "final.safetensors").write_bytes(b"")
    assert pipeline.resolve_model_path(run) == run / "final.safetensors"
    with pytest.raises(ValueError, match="does not exist"):
        pipeline.resolve_model_path(tmp_path / "nope.safetensors")


def test_a_model_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert cli_main(["transcribe", "--model", str(bad), str(tmp_path / "a.wav")]) == 2
    assert "bad.safetensors" in capsys.readouterr().err


def _fake_run(run: Path) -> None:
    run.mkdir()
    # Steps 3-4 were logged, the run was killed after its step-2 checkpoint and resumed: 3-4 appear twice.
    rows = ["step,epoch,loss", "1,0,9.0", "2,0,7.0", "3,0,6.5", "4,1,6.4", "3,0,6.0", "4,1,5.0", "5,1,4.0"]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    (run / "dev.csv").write_text("epoch,step,dev_wer\n1,3,0.9\n2,5,0.7\n")


def test_plot_writes_a_png_and_keeps_the_last_row_per_step(tmp_path, capsys):
    _fake_run(tmp_path / "run")
    assert _read_csv(tmp_path / "run" / "metrics.csv", "step", "loss") == ([1, 2, 3, 4, 5], [9, 7, 6, 5, 4])
    assert cli_main(["plot", str(tmp_path / "run")]) == 0
    png = tmp_path / "run" / "curves.png"
    assert capsys.readouterr().out.strip() == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_of_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path, capsys):
    assert cli_main(["plot", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "metrics.csv" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()

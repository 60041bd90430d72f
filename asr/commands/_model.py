"""Which model a command uses: ``--model`` (a checkpoint file or a run directory) or the bundled one."""

from __future__ import annotations

from pathlib import Path

#: Where the bundled model lives inside the package (issue 6 ships it; absent until then).
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "model"


def _checkpoint_in(folder: Path) -> Path | None:
    """``final.safetensors`` or ``model.safetensors`` in ``folder``, else its only ``*.safetensors``."""
    for name in ("final.safetensors", "model.safetensors"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors"))
    return found[0] if len(found) == 1 else None


def resolve_model_path(model: str | Path | None, *, bundled_dir: Path | None = None) -> Path:
    """The checkpoint file to load; ValueError with what to do when there is none."""
    if model is None:
        bundled_dir = BUNDLED_MODEL_DIR if bundled_dir is None else bundled_dir
        found = _checkpoint_in(bundled_dir) if bundled_dir.is_dir() else None
        if found is None:
            raise ValueError(
                f"no --model given and no bundled model is installed yet (looked in {bundled_dir}); "
                "pass --model CHECKPOINT (e.g. RUN_DIR/final.safetensors from 'asr train')"
            )
        return found
    path = Path(model)
    if path.is_dir():
        found = _checkpoint_in(path)
        if found is None:
            raise ValueError(
                f"--model {str(path)!r} is a folder without final.safetensors, model.safetensors or a single "
                "*.safetensors file; name the checkpoint file"
            )
        return found
    if not path.is_file():
        raise ValueError(f"--model {str(path)!r} does not exist")
    return path


def load_model(model: str | Path | None, *, device: str = "cpu"):  # -> asr.pipeline.AsrModel
    """Load the checkpoint ``resolve_model_path`` picks (safetensors; nothing is unpickled)."""
    from asr.pipeline import load_asr_model

    return load_asr_model(resolve_model_path(model), device=device)

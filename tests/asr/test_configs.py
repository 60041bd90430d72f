from dataclasses import dataclass, field

import pytest

from asr.configs import apply_overrides, load_recipe, parse_cli_overrides


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    name: str = "adamw"
    betas: tuple[float, ...] = (0.9, 0.98)


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    steps: int = 10
    dev: str | None = "dev.jsonl"
    flag: bool = False


def test_overrides_nested_and_typed():
    cfg = apply_overrides(Outer(), {"inner": {"lr": 3, "betas": [0.8, 0.9]}, "steps": 5, "dev": None})
    assert cfg.inner.lr == 3.0 and isinstance(cfg.inner.lr, float)
    assert cfg.inner.betas == (0.8, 0.9)
    assert cfg.steps == 5 and cfg.dev is None
    assert Outer().steps == 10  # frozen defaults untouched


def test_unknown_key_and_bad_type_named():
    with pytest.raises(ValueError, match="unknown config key 'inner.lrr'"):
        apply_overrides(Outer(), {"inner": {"lrr": 1}})
    with pytest.raises(ValueError, match="steps: expected an integer"):
        apply_overrides(Outer(), {"steps": "many"})
    with pytest.raises(ValueError, match="flag: expected true/false"):
        apply_overrides(Outer(), {"flag": "yes please"})


def test_cli_overrides_parse_yaml_values():
    parsed = parse_cli_overrides(["inner.lr=3e-4", "flag=true", "dev=null"])
    assert parsed == {"inner": {"lr": "3e-4"}, "flag": True, "dev": None}
    assert apply_overrides(Outer(), parsed).inner.lr == 3e-4
    with pytest.raises(ValueError, match="key=value"):
        parse_cli_overrides(["oops"])


def test_recipe_base_chain(tmp_path):
    (tmp_path / "base.yaml").write_text("steps: 3\ninner:\n  lr: 0.1\n  name: radam\n")
    (tmp_path / "tiny.yaml").write_text("base: base.yaml\ninner:\n  lr: 0.5\n")
    merged = load_recipe(tmp_path / "tiny.yaml")
    assert merged == {"steps": 3, "inner": {"lr": 0.5, "name": "radam"}}
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_recipe(tmp_path / "loop.yaml")

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from promptlift.config import ConfigError, from_dict, load_config, save_config, to_dict


@dataclass
class ToyConfig:
    """A config with one field of each supported kind."""

    steps: int = field(default=10, metadata={"help": "Steps."})
    lr: float = 1e-4
    name: str = "toy"
    mode: Literal["a", "b"] = "a"
    flag: bool = False
    tags: list[str] = field(default_factory=list)
    height: int | None = None
    output_dir: Path = Path("out")

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"`steps` must be >= 1, got {self.steps}.")


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"steps": "7"}, {"steps": 7}),
        ({"lr": "3e-5"}, {"lr": 3e-5}),
        ({"mode": "b"}, {"mode": "b"}),
        ({"flag": "true"}, {"flag": True}),
        ({"flag": False}, {"flag": False}),
        ({"tags": "x, y"}, {"tags": ["x", "y"]}),
        ({"tags": ["x"]}, {"tags": ["x"]}),
        ({"height": "none"}, {"height": None}),
        ({"height": 64}, {"height": 64}),
        ({"output_dir": "d"}, {"output_dir": Path("d")}),
    ],
)
def test_values_are_coerced_to_field_types(data, expected):
    cfg = from_dict(ToyConfig, data)
    for key, value in expected.items():
        assert getattr(cfg, key) == value and type(getattr(cfg, key)) is type(value)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"stepz": 3}, "unknown key `stepz`"),
        ({"steps": "abc"}, "`steps` must be int"),
        ({"steps": 2.5}, "`steps` must be int"),
        ({"mode": "c"}, "`mode` must be one of ['a', 'b']"),
        ({"flag": "maybe"}, "`flag` must be true or false"),
        ({"steps": None}, "`steps` cannot be empty"),
        ({"steps": 0}, "`steps` must be >= 1"),
    ],
)
def test_bad_keys_and_values_are_named(data, message):
    with pytest.raises(ValueError) as e:
        from_dict(ToyConfig, data)
    assert message in str(e.value)


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid keys: steps, lr, name, mode, flag, tags, height, output_dir"):
        from_dict(ToyConfig, {"lr_rate": 1})


def test_yaml_then_overrides_take_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"steps": 5, "name": "from-yaml"}))
    cfg = load_config(ToyConfig, path, {"name": "from-cli"})
    assert (cfg.steps, cfg.name, cfg.lr) == (5, "from-cli", 1e-4)


def test_yaml_unknown_key_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("stepz: 5\n")
    with pytest.raises(ConfigError, match=r"unknown key `stepz` in .*c\.yaml"):
        load_config(ToyConfig, path)


def test_missing_yaml_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(ToyConfig, tmp_path / "nope.yaml")


def test_save_then_load_round_trips(tmp_path):
    cfg = from_dict(ToyConfig, {"steps": 3, "tags": ["a"], "mode": "b", "height": 8})
    path = save_config(cfg, tmp_path / "cfg.yaml")
    assert load_config(ToyConfig, path) == cfg
    assert to_dict(cfg)["output_dir"] == "out"
    assert [p.name for p in tmp_path.iterdir()] == ["cfg.yaml"]  # no temporary left behind

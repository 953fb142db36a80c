"""Config: defaults <- YAML <- flags, strict keys, types, and the saved round trip."""

from __future__ import annotations

import pytest

from train.config import DEFAULTS, make_config, parse_size, save_config
from vbg import VbgError


def test_precedence_defaults_yaml_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 7\nlr: 0.01\ncrop: [64, 96]\nencoder: mobilenet_v2\namp: off\n")
    cfg = make_config(f, {"epochs": 3, "lr": None})  # None = flag not given
    assert cfg.epochs == 3  # flag beats file
    assert cfg.lr == 0.01 and cfg.crop == (64, 96) and cfg.encoder == "mobilenet_v2"  # file
    assert cfg.batch_size == DEFAULTS.batch_size  # default
    assert cfg.amp == "off"  # YAML's bare `off` is a boolean; read as the mode


def test_saved_config_round_trips(tmp_path):
    cfg = make_config(None, {"height": 96, "width": 160, "decoder_channels": [32, 16, 16, 8, 8]})
    save_config(cfg, tmp_path / "config.yaml")
    again = make_config(tmp_path / "config.yaml")
    assert again == cfg
    assert "resume" not in (tmp_path / "config.yaml").read_text()  # run-time only


@pytest.mark.parametrize(
    "text, match",
    [
        ("epochz: 3\n", "unknown key"),
        ("resume: last\n", "unknown key"),
        ("epochs: many\n", "epochs"),
        ("epochs: 1.5\n", "integer"),
        ("crop: [100, 96]\n", "multiples of 32"),
        ("crowd: maybe\n", "crowd must be one of"),
        ("split: [0.5, 0.5, 0.5]\n", "summing to 1"),
        ("amp: fp8\n", "amp must be one of"),
        ("- just\n- a list\n", "mapping"),
        ("epochs: [1\n", "not valid YAML"),
    ],
)
def test_bad_config_files_fail_with_one_line(tmp_path, text, match):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(VbgError, match=match) as e:
        make_config(f)
    assert "\n" not in str(e.value)


def test_parse_size():
    assert parse_size("160x288") == (160, 288)
    with pytest.raises(VbgError, match="HEIGHTxWIDTH"):
        parse_size("160")
    with pytest.raises(VbgError):
        parse_size("0x10")


def test_shipped_configs_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    ref = make_config(root / "coco2017_resnet34.yaml")
    assert (ref.encoder, ref.encoder_weights, ref.max_images, ref.epochs) == (
        "resnet34",
        "imagenet",
        64000,
        30,
    )
    tiny = make_config(root / "tiny_cpu.yaml")
    assert tiny.encoder == "mobilenet_v2" and tiny.encoder_weights.startswith("pkg:")

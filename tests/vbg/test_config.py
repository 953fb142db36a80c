from __future__ import annotations

import dataclasses

import pytest

from vbg import VbgError
from vbg.config import (
    ProcessConfig,
    RunConfig,
    load_config,
    parse_camera,
    parse_size,
    resolve,
)


def write(tmp_path, text: str):
    p = tmp_path / "vbg.toml"
    p.write_text(text)
    return p


def test_defaults_without_file_or_flags():
    assert resolve(ProcessConfig) == ProcessConfig()
    run = resolve(RunConfig)
    assert run.size == (1280, 720) and run.output == ("vcam",) and run.background == ("blur",)


def test_precedence_defaults_file_flags(tmp_path):
    f = load_config(
        write(
            tmp_path,
            'engine = "onnxruntime"\nema = 0.7\nthreads = 2\n'
            '[process]\nbackground = "color:#102030"\nema = 0.8\n',
        )
    )
    cfg = resolve(ProcessConfig, f, {"threads": 3, "background": None})
    assert cfg.engine == "onnxruntime"  # file over default
    assert cfg.ema == 0.8  # [process] table over top level
    assert cfg.background == "color:#102030"  # a flag left out (None) does not override
    assert cfg.threads == 3  # flag over file
    assert cfg.close_px == ProcessConfig().close_px  # untouched default


def test_run_section_and_lists(tmp_path):
    f = load_config(
        write(
            tmp_path,
            '[run]\ncamera = "2"\nsize = "640x480"\nbackground = ["blur", "color:#00ff00"]\n'
            'output = "preview"\nmirror = true\n[process]\nkeep-partial = true\n',
        )
    )
    run = resolve(RunConfig, f)
    assert run.camera == 2 and run.size == (640, 480)
    assert run.background == ("blur", "color:#00ff00") and run.output == ("preview",)
    assert run.mirror is True
    assert resolve(ProcessConfig, f).keep_partial is True  # dashes work like underscores
    # flags still win over the file
    assert resolve(RunConfig, f, {"mirror": False, "size": "320x240"}).size == (320, 240)
    assert resolve(RunConfig, f, {"mirror": False}).mirror is False


def test_top_level_key_of_the_other_command_is_ignored(tmp_path):
    f = load_config(write(tmp_path, 'camera = "/dev/video4"\nkeep_partial = true\n'))
    assert resolve(RunConfig, f).camera == "/dev/video4"
    assert resolve(ProcessConfig, f).keep_partial is True


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(VbgError, match=r"unknown key\(s\) backgrund, process\.fsp"):
        load_config(write(tmp_path, 'backgrund = "x"\n[process]\nfsp = 3\n'))


def test_input_is_not_config_file_material(tmp_path):
    with pytest.raises(VbgError, match="input"):
        load_config(write(tmp_path, 'input = "a.mp4"\n'))


def test_bad_values(tmp_path):
    with pytest.raises(VbgError, match="'threads' must be an integer"):
        resolve(ProcessConfig, load_config(write(tmp_path, 'threads = "two"\n')))
    with pytest.raises(VbgError, match="'tta' must be true or false"):
        resolve(ProcessConfig, load_config(write(tmp_path, "tta = 1\n")))
    with pytest.raises(VbgError, match="size must be WIDTHxHEIGHT"):
        resolve(RunConfig, {"size": "big"})


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(VbgError, match="not valid TOML"):
        load_config(write(tmp_path, "engine = \n"))
    with pytest.raises(VbgError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_unknown_flag_name_is_a_programming_error_caught():
    with pytest.raises(VbgError, match="unknown process option"):
        resolve(ProcessConfig, None, {"camera": 1})


def test_parse_size_and_camera():
    assert parse_size("1920x1080") == (1920, 1080)
    assert parse_size(" 640 X 480 ") == (640, 480)
    assert parse_size([320, 240]) == (320, 240)
    for bad in ("1280", "1280x", "x720", "-1x5", "1280x720x3", "5x5"):
        with pytest.raises(VbgError):
            parse_size(bad)
    assert parse_camera("0") == 0 and parse_camera(1) == 1
    assert parse_camera("/dev/video2") == "/dev/video2"
    assert parse_camera("rtsp://cam/1") == "rtsp://cam/1"


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ProcessConfig().engine = "torch"  # type: ignore[misc]

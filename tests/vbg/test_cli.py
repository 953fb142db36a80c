"""The command line: help, usage errors, one-line errors with exit 1, nothing half-written."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from vbg import __version__
from vbg.cli import build_parser, main


@pytest.fixture()
def photo(tmp_path):
    p = tmp_path / "photo.png"
    cv2.imwrite(str(p), np.full((48, 64, 3), 128, np.uint8))
    return p


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- help


def test_main_help_lists_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for cmd in ("process", "run", "backgrounds", "eval", "bench"):
        assert cmd in out
    assert "examples:" in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and __version__ in out


@pytest.mark.parametrize(
    "cmd, flags",
    [
        (
            "process",
            [
                "INPUT",
                "--output",
                "--background",
                "--model",
                "--engine",
                "--threads",
                "--keep-partial",
                "--no-progress",
                "--tta",
                "--config",
                "examples:",
            ],
        ),
        (
            "run",
            [
                "--camera",
                "--size",
                "--fps",
                "--background",
                "--output",
                "--mirror",
                "--show-fps",
                "--vcam-backend",
                "--max-frames",
                "--config",
                "v4l2loopback",
                "hotkeys",
            ],
        ),
        ("backgrounds", ["--credits", "color:#RRGGBB"]),
        ("eval", ["--ann", "--images", "--model", "--engine", "--json", "--tta", "dtSSD"]),
    ],
)
def test_subcommand_help_mentions_its_flags(capsys, cmd, flags):
    code, out, _ = run(capsys, cmd, "--help")
    assert code == 0
    for flag in flags:
        assert flag in out, f"{cmd} --help does not mention {flag}"


def test_bench_help_delegates_to_vbg_bench(capsys):
    pytest.importorskip("vbg.bench")
    code, out, _ = run(capsys, "bench", "--help")
    assert code == 0
    assert "usage: vbg bench" in out


def test_help_imports_nothing_heavy():
    code = (
        "import sys; from vbg.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('numpy', 'cv2', 'av', 'onnxruntime', 'torch', 'openvino') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_parser_builds_without_bench():
    parser = build_parser()
    assert parser.prog == "vbg"


# --------------------------------------------------------------------------- usage errors (2)


def test_no_command_is_a_usage_error(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "usage:" in err


def test_unknown_flag_is_a_usage_error(capsys):
    code, _, err = run(capsys, "process", "a.mp4", "-o", "b.mp4", "--bogus")
    assert code == 2 and "--bogus" in err


def test_process_without_output_is_a_usage_error(capsys, photo):
    code, _, err = run(capsys, "process", str(photo))
    assert code == 2 and "-o/--output" in err


def test_non_numeric_threads_is_a_usage_error(capsys):
    code, _, err = run(capsys, "process", "a.mp4", "-o", "b.mp4", "--threads", "two")
    assert code == 2 and "--threads" in err


# --------------------------------------------------------------------------- errors (1)


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("vbg: error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]


def test_bad_size(capsys):
    code, _, err = run(capsys, "run", "--size", "1280by720")
    assert code == 1
    assert_one_line_error(err, "WIDTHxHEIGHT", "1280by720")


def test_unknown_engine(capsys, photo, tmp_path):
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "process", str(photo), "-o", str(out), "--engine", "warp9")
    assert code == 1
    assert_one_line_error(err, "unknown engine 'warp9'", "onnxruntime", "auto")
    assert not out.exists()


def test_unknown_background_lists_valid_names(capsys, photo, tmp_path):
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "process", str(photo), "-o", str(out), "--background", "moon")
    assert code == 1
    assert_one_line_error(err, "unknown background 'moon'", "paris-eiffel-tower", "blur")
    assert not out.exists()


def test_unknown_background_in_run_fails_before_the_camera(capsys):
    code, _, err = run(capsys, "run", "--background", "blur", "--background", "moon")
    assert code == 1
    assert_one_line_error(err, "unknown background 'moon'", "color:#RRGGBB")


def test_unknown_run_output(capsys):
    code, _, err = run(capsys, "run", "--output", "zoom", "--background", "blur")
    assert code == 1
    assert_one_line_error(err, "unknown output 'zoom'", "vcam", "preview")


def test_missing_input_exits_1_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "out.mp4"
    code, _, err = run(capsys, "process", str(tmp_path / "nope.mp4"), "-o", str(out))
    assert code == 1
    assert_one_line_error(err, "input not found", "nope.mp4")
    assert list(tmp_path.iterdir()) == []


def test_missing_model_card(capsys, photo, tmp_path):
    out = tmp_path / "out.png"
    code, _, err = run(
        capsys, "process", str(photo), "-o", str(out), "--model", str(tmp_path / "none.json")
    )
    assert code == 1
    assert_one_line_error(err, "none.json", "does not exist")
    assert not out.exists()


def test_config_unknown_key(capsys, photo, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('engin = "onnxruntime"\n')
    code, _, err = run(capsys, "process", str(photo), "-o", "x.png", "--config", str(cfg))
    assert code == 1
    assert_one_line_error(err, "unknown key(s) engin")


def test_bad_smoothing_option(capsys, photo, tmp_path, tiny_card):
    code, _, err = run(
        capsys,
        "process",
        str(photo),
        "-o",
        str(tmp_path / "o.png"),
        "--model",
        str(tiny_card),
        "--engine",
        "onnxruntime",
        "--ema",
        "0",
    )
    assert code == 1
    assert_one_line_error(err, "ema")


def test_eval_missing_annotations(capsys, tmp_path):
    code, _, err = run(capsys, "eval", "--ann", str(tmp_path / "a.json"), "--images", str(tmp_path))
    assert code == 1
    assert_one_line_error(err, "a.json", "does not exist")


# --------------------------------------------------------------------------- backgrounds


def test_backgrounds_lists_name_description_licence(capsys):
    from vbg.backgrounds import list_backgrounds

    items = list_backgrounds()
    code, out, _ = run(capsys, "backgrounds")
    assert code == 0
    assert "licence" in out.splitlines()[0]
    for b in items:
        assert b.name in out
        assert b.license in out


def test_process_with_config_file(capsys, photo, tmp_path, tiny_card):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'model = "{tiny_card}"\nengine = "onnxruntime"\nthreads = 1\n'
        '[process]\nbackground = "color:#00ff00"\n'
    )
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "process", str(photo), "-o", str(out), "--config", str(cfg))
    assert code == 0, err
    assert cv2.imread(str(out)).shape == (48, 64, 3)


def test_run_takes_the_look_flags_of_process(monkeypatch):
    """--light-wrap / --harmonize reach vbg run's config, as they reach vbg process's."""
    import vbg.pipeline

    seen = {}
    monkeypatch.setattr(vbg.pipeline, "run_config", lambda cfg: seen.setdefault("cfg", cfg))
    assert main(["run", "--no-light-wrap", "--harmonize", "--output", "preview"]) == 0
    assert seen["cfg"].light_wrap is False and seen["cfg"].harmonize is True
    seen.clear()
    assert main(["run", "--output", "preview"]) == 0
    assert seen["cfg"].light_wrap is True and seen["cfg"].harmonize is False

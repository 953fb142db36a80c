"""SIGTERM and SIGHUP stop `vbg process` and `vbg run` (recording a file) as cleanly as
Ctrl-C: in real subprocesses, the final name holds a playable file or nothing, and no
temporary *.partial* file is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.vbg.test_process_e2e import REPO, make_clip
from vbg.sources import VideoFileSource

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def engine_args(card: Path) -> list[str]:
    return ["--model", str(card), "--engine", "onnxruntime", "--threads", "1"]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "vbg", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_partial(folder: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until the temporary output exists and frames went in (the work is under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ended before the signal: {proc.communicate()[1]}")
        if any(folder.glob("*.partial*")):
            time.sleep(0.7)  # some frames in (the muxer writes in large blocks)
            return
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no partial file appeared")


def partials(folder: Path) -> list[Path]:
    return sorted(folder.glob("*partial*"))


def playable_frames(path: Path) -> int:
    """Every frame decodes, and as many as the file says (VideoFileSource checks both)."""
    return sum(1 for _ in VideoFileSource(path))


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    return make_clip(
        tmp_path_factory.mktemp("sig") / "long.mp4", frames=900, fps=30, size=(192, 128), audio=True
    )


@pytest.mark.parametrize(
    ("sig", "keep"), [(signal.SIGTERM, False), (signal.SIGHUP, True), (signal.SIGTERM, True)]
)
def test_signal_during_process(long_clip, tiny_card, tmp_path, sig, keep):
    out = tmp_path / "out.mp4"
    keep_flag = ["--keep-partial"] if keep else []
    proc = start(
        ["process", str(long_clip), "-o", str(out), "--no-progress", *keep_flag]
        + engine_args(tiny_card),
        tmp_path,
    )
    wait_for_partial(tmp_path, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and signal.Signals(sig).name in err
    assert partials(tmp_path) == []
    if keep:
        assert 0 < playable_frames(out) < 900
    else:
        assert not out.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_during_run_recording(long_clip, tiny_card, tmp_path, sig):
    out = tmp_path / "rec.mp4"
    proc = start(
        ["run", "--camera", str(long_clip), "--loop", "-o", str(out), "--size", "96x64"]
        + engine_args(tiny_card),
        tmp_path,
    )
    wait_for_partial(tmp_path, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err  # stopping is the ordinary end of a live run
    assert "Traceback" not in err
    assert partials(tmp_path) == []
    assert playable_frames(out) > 0
    assert VideoFileSource(out).width == 96


def test_second_signal_exits_at_once_leaving_no_broken_file(long_clip, tiny_card, tmp_path):
    out = tmp_path / "out.mp4"
    proc = start(
        ["process", str(long_clip), "-o", str(out), "--no-progress", "--keep-partial"]
        + engine_args(tiny_card),
        tmp_path,
    )
    wait_for_partial(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert partials(tmp_path) == []
    if out.exists():  # the first signal's finalize may have completed first
        assert playable_frames(out) > 0

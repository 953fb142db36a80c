"""A quiet, clear console: one line on Ctrl-C, an image reports its time."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.vbg.test_process_e2e import make_clip
from vbg.cli import main


def test_image_reports_its_time_not_fps(tmp_path, tiny_card, capsys):
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), np.full((48, 64, 3), 100, np.uint8))
    out = tmp_path / "out.png"
    rc = main(
        ["process", str(src), "-o", str(out), "--model", str(tiny_card), "--engine", "onnxruntime"]
    )
    assert rc == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("vbg: wrote"))
    assert line.endswith(" s") and "fps" not in line and "frame" not in line


def test_ctrl_c_prints_one_line(tmp_path, tiny_card, capsys, monkeypatch):
    from vbg import pipeline

    clip = make_clip(tmp_path / "in.mp4", frames=6, audio=False)
    calls = {"n": 0}
    real = pipeline.FrameProcessor.process

    def interrupt(self, frame, t=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, frame, t)

    monkeypatch.setattr(pipeline.FrameProcessor, "process", interrupt)
    out = tmp_path / "out.mp4"
    rc = main(
        [
            "process",
            str(clip),
            "-o",
            str(out),
            "--model",
            str(tiny_card),
            "--engine",
            "onnxruntime",
            "--no-progress",
        ]
    )
    assert rc == 130
    err = [x for x in capsys.readouterr().err.splitlines() if "interrupt" in x]
    assert err == [f"vbg: interrupted: {out} not written"]
    assert not out.exists()


@pytest.mark.parametrize("argv", [["doctor"], ["cameras"]])
def test_no_opencv_chatter(argv, capfd):
    main(argv)
    assert "[ WARN" not in capfd.readouterr().err

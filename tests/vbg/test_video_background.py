"""Video backgrounds: they loop, keep their own frame rate, and are fitted to the frame."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.vbg.test_pipeline import ConstEngine, FakeSource, RecordingSink, fake_processor
from vbg import VbgError
from vbg.backgrounds import parse_background
from vbg.compose import Compositor
from vbg.pipeline import run_live
from vbg.video_background import VideoBackground

N, FPS = 5, 10  # a 0.5 s clip: frame k is grey level 40 * (k + 1)


def make_bg(path: Path, codec: str = "libx264", pix: str = "yuv420p", size=(64, 48)) -> Path:
    w, h = size
    with av.open(str(path), mode="w") as out:
        s = out.add_stream(codec, rate=FPS)
        s.width, s.height, s.pix_fmt = w, h, pix
        for k in range(N):
            img = np.full((h, w, 3), 40 * (k + 1), np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts, f.time_base = k, Fraction(1, FPS)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return path


def _index(img: np.ndarray) -> int:
    return round(float(img.mean()) / 40) - 1


@pytest.mark.parametrize("kind", ["mp4", "gif"])
def test_loops_at_its_own_frame_rate_and_fits_the_size(tmp_path, kind):
    path = (
        make_bg(tmp_path / "bg.mp4")
        if kind == "mp4"
        else make_bg(tmp_path / "bg.gif", codec="gif", pix="rgb8")
    )
    bg = VideoBackground(path, (90, 160))  # a different aspect: cover-fitted
    try:
        times = [i / 30 for i in range(45)]  # 1.5 s of 30 fps output: three loops
        got = [bg.frame(t) for t in times]
        assert all(g.shape == (90, 160, 3) for g in got)
        want = [int(t * FPS + 1e-6) % N for t in times]
        assert [_index(g) for g in got] == want
        assert bg.duration == pytest.approx(N / FPS, abs=0.02)
        # A new input video: its timeline starts again at 0, so does the background.
        assert _index(bg.frame(0.0)) == 0
    finally:
        bg.close()


def test_parse_and_compose_with_a_video_background(tmp_path):
    spec = parse_background(str(make_bg(tmp_path / "bg.mp4")))
    assert spec.kind == "video"
    comp = Compositor(spec, (48, 64))
    frame = np.zeros((48, 64, 3), np.uint8)
    alpha = np.zeros((48, 64), np.uint8)  # all background
    try:
        outs = [_index(comp(frame, alpha, t=k / FPS).copy()) for k in range(7)]
    finally:
        comp.close()
    assert outs == [0, 1, 2, 3, 4, 0, 1]


def test_bad_video_background(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(VbgError, match="cannot read background video"):
        parse_background(str(bad))


def test_live_loop_with_a_video_background(tmp_path, tiny_card):
    sink = RecordingSink()
    p = fake_processor(tiny_card, ConstEngine(-20.0))
    try:
        res = run_live(
            FakeSource(4),
            outputs=[sink],
            processor=p,
            backgrounds=[str(make_bg(tmp_path / "bg.mp4", size=(96, 72)))],
        )
    finally:
        p.close()
    assert res.frames == 4
    assert all(0 <= _index(f) < N for f in sink.frames)  # frames of the clip, by wall clock

"""`vbg process` end to end on generated clips (with an audio track), with the tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from vbg import VbgError
from vbg.cli import main
from vbg.pipeline import build_processor, process_video

REPO = Path(__file__).resolve().parents[2]


def make_clip(
    path: Path,
    *,
    frames: int = 15,
    fps: int = 15,
    size: tuple[int, int] = (96, 64),
    audio: bool = True,
) -> Path:
    """A small H.264 clip (a moving bright square), with a 440 Hz AAC track when audio=True."""
    import av

    w, h = size
    with av.open(str(path), mode="w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.options = {"preset": "ultrafast"}
        a = None
        rate = 22050
        if audio:
            a = out.add_stream("aac", rate=rate)
            a.layout = "mono"
        samples_per_frame = rate // fps
        t = 0
        for i in range(frames):
            img = np.full((h, w, 3), 40, np.uint8)
            x = (i * 4) % (w - 24)
            img[16:48, x : x + 24] = (200, 180, 160)
            vf = av.VideoFrame.from_ndarray(img, format="bgr24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for p in v.encode(vf):
                out.mux(p)
            if a is not None:
                n = np.arange(t, t + samples_per_frame)
                tone = (0.2 * np.sin(2 * np.pi * 440 * n / rate)).astype(np.float32)[None, :]
                af = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
                af.sample_rate = rate
                af.pts = t
                af.time_base = Fraction(1, rate)
                t += samples_per_frame
                for p in a.encode(af):
                    out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        if a is not None:
            for p in a.encode(None):
                out.mux(p)
    return path


def probe(path: Path) -> dict:
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        frames = sum(1 for _ in c.decode(vs))
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return {
            "codec": vs.codec_context.name,
            "frames": frames,
            "fps": float(vs.average_rate),
            "duration": float(vs.duration * vs.time_base) if vs.duration else None,
            "audio": [s.codec_context.name for s in c.streams.audio],
            "size": (vs.codec_context.width, vs.codec_context.height),
        }


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "in.mp4")


def args(tiny_card) -> list[str]:
    return ["--model", str(tiny_card), "--engine", "onnxruntime", "--threads", "1"]


def test_process_keeps_frames_duration_and_audio(clip, tiny_card, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = main(
        ["process", str(clip), "-o", str(out), "-b", "paris-eiffel-tower", *args(tiny_card)]
    )
    assert code == 0, capsys.readouterr().err
    src, dst = probe(clip), probe(out)
    assert dst["codec"] == "h264"
    assert dst["frames"] == src["frames"] == 15
    assert dst["size"] == src["size"]
    assert abs(dst["fps"] - src["fps"]) < 0.01
    assert abs(dst["duration"] - src["duration"]) <= 1 / src["fps"] + 1e-6
    assert dst["audio"] == ["aac"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no partial left


def test_process_via_python_m_vbg(clip, tiny_card, tmp_path):
    out = tmp_path / "sub.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "vbg", "process", str(clip), "-o", str(out), "--no-progress"]
        + ["-b", "blur", *args(tiny_card)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "engine: onnxruntime" in r.stderr and "wrote" in r.stderr
    assert "\r" not in r.stderr  # stderr is not a terminal: no progress bar
    assert probe(out)["frames"] == 15


def test_clip_without_audio(tiny_card, tmp_path):
    src = make_clip(tmp_path / "silent.mp4", frames=6, audio=False)
    res = process_video(src, tmp_path / "o.mp4", model=tiny_card, engine="onnxruntime", threads=1)
    assert res.frames == 6
    assert probe(tmp_path / "o.mp4")["audio"] == []


def test_image_input(tiny_card, tmp_path, capsys):
    img = tmp_path / "photo.jpg"
    cv2.imwrite(str(img), np.full((50, 70, 3), 90, np.uint8))
    out = tmp_path / "photo-out.png"
    assert main(["process", str(img), "-o", str(out), "-b", "color:#00ff00", *args(tiny_card)]) == 0
    assert cv2.imread(str(out)).shape == (50, 70, 3)
    # an image cannot become a video
    code = main(["process", str(img), "-o", str(tmp_path / "x.mp4"), *args(tiny_card)])
    assert code == 1 and "output must be one too" in capsys.readouterr().err


def test_corrupt_input_writes_nothing(tiny_card, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(os.urandom(4096))
    out = tmp_path / "out.mp4"
    code = main(["process", str(bad), "-o", str(out), *args(tiny_card)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("vbg: error:") and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]


def test_truncated_input_writes_nothing(clip, tiny_card, tmp_path, capsys):
    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mp4"
    code = main(["process", str(cut), "-o", str(out), *args(tiny_card)])
    # A truncated MP4 may be unreadable (error) or decodable up to the cut; never half a file.
    if code != 0:
        assert "vbg: error:" in capsys.readouterr().err
        assert not out.exists()
    assert not (tmp_path / "out.partial.mp4").exists()


def test_card_weights_mismatch_is_a_clear_error(tiny_card, tmp_path, clip, capsys):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_card.parent, model_dir)
    card = model_dir / tiny_card.name
    d = json.loads(card.read_text())
    d["sha256"] = {k: "0" * 64 for k in d["sha256"]}
    card.write_text(json.dumps(d))
    out = tmp_path / "out.mp4"
    code = main(
        ["process", str(clip), "-o", str(out), "--model", str(card), "--engine", "onnxruntime"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "does not match its card" in err and "sha256" in err
    assert not out.exists() and not (tmp_path / "out.partial.mp4").exists()


def test_output_must_be_a_video_name(clip, tiny_card, tmp_path, capsys):
    code = main(["process", str(clip), "-o", str(tmp_path / "o.gif"), *args(tiny_card)])
    assert code == 1 and "H.264" in capsys.readouterr().err


def test_output_folder_must_exist(clip, tiny_card, tmp_path, capsys):
    code = main(["process", str(clip), "-o", str(tmp_path / "no" / "o.mp4"), *args(tiny_card)])
    assert code == 1 and "output folder does not exist" in capsys.readouterr().err


class _StopAfter:
    """Wraps a processor: raises `exc` on frame n (a Ctrl-C or a crash mid-video)."""

    def __init__(self, proc, n: int, exc: BaseException) -> None:
        self.proc, self.n, self.exc, self.i = proc, n, exc, 0
        real = proc.process

        def process(frame, t=None):
            if self.i == self.n:
                raise self.exc
            self.i += 1
            return real(frame, t)

        proc.process = process


@pytest.fixture()
def proc(tiny_card):
    p = build_processor(tiny_card, engine="onnxruntime", threads=1)
    yield p
    p.close()


def test_ctrl_c_removes_the_partial_file(clip, proc, tmp_path):
    _StopAfter(proc, 5, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        process_video(clip, tmp_path / "o.mp4", processor=proc, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_with_keep_partial_finalizes_a_shorter_file(clip, proc, tmp_path):
    _StopAfter(proc, 5, KeyboardInterrupt())
    out = tmp_path / "o.mp4"
    with pytest.raises(KeyboardInterrupt):
        process_video(clip, out, processor=proc, keep_partial_on_interrupt=True)
    info = probe(out)
    assert info["frames"] == 5 and info["codec"] == "h264"
    assert info["audio"] == ["aac"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]


def test_error_mid_video_leaves_nothing(clip, proc, tmp_path):
    _StopAfter(proc, 3, VbgError("boom"))
    with pytest.raises(VbgError, match="boom"):
        process_video(clip, tmp_path / "o.mp4", processor=proc)
    assert list(tmp_path.iterdir()) == []


def test_process_times_every_stage(clip, proc, tmp_path):
    res = process_video(clip, tmp_path / "o.mp4", processor=proc, background="blur")
    summary = res.timer.summary()
    for stage in ("capture", "preprocess", "inference", "smoothing", "compositing", "output"):
        assert summary[stage]["n"] == 15, stage


def test_real_sample_clip(sample_clip, tiny_card, tmp_path):
    out = tmp_path / "talk.mp4"
    res = process_video(
        sample_clip,
        out,
        background="paris-eiffel-tower",
        model=tiny_card,
        engine="onnxruntime",
        threads=1,
    )
    src, dst = probe(sample_clip), probe(out)
    assert res.frames == src["frames"] == dst["frames"]
    assert abs(dst["duration"] - src["duration"]) <= 1 / src["fps"] + 1e-6
    assert dst["audio"] == src["audio"]

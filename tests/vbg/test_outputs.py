"""vbg process output options: --overwrite, --crf/--preset, --mask-only, --output-alpha."""

from __future__ import annotations

import contextlib
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.vbg.test_pipeline import LeftHalfEngine, fake_processor
from tests.vbg.test_process_e2e import make_clip
from vbg import VbgError
from vbg.alpha_sinks import AlphaVideoSink, PngSequenceSink, codec_available
from vbg.cli import main
from vbg.outputs import OutputOptions, check_overwrite
from vbg.pipeline import process_video


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "in.mp4", frames=6, size=(96, 64), audio=False)


def _run(tiny_card, clip, out, **options):
    proc = fake_processor(tiny_card, LeftHalfEngine())
    try:
        return process_video(clip, out, processor=proc, out=OutputOptions(**options)), proc
    finally:
        proc.close()


def _mask_of(tiny_card, clip) -> list[np.ndarray]:
    """The matte the processor gives for each frame of the clip (the reference)."""
    from vbg.sources import open_input

    proc = fake_processor(tiny_card, LeftHalfEngine())
    src = open_input(clip)
    try:
        proc.reset()
        return [proc.mask(f.image).copy() for f in src]
    finally:
        src.close()
        proc.close()


def test_existing_output_needs_overwrite(tmp_path, clip, tiny_card):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(VbgError, match="already exists; pass --overwrite"):
        _run(tiny_card, clip, out)
    assert out.read_bytes() == b"precious"  # untouched, nothing processed
    _run(tiny_card, clip, out, overwrite=True)
    assert out.stat().st_size > 1000
    assert check_overwrite(tmp_path / "new.mp4") == tmp_path / "new.mp4"


def test_cli_refuses_existing_output_before_loading_the_model(tmp_path, clip, capsys):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"x")
    assert main(["process", str(clip), "-o", str(out), "--model", "/nope.json"]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err


def test_crf_controls_size(tmp_path, clip, tiny_card):
    sizes = {}
    # 0 (lossless) against 40: a wide gap, since this tiny, nearly still clip compresses
    # well at any moderate CRF.
    for crf in (0, 40):
        out = tmp_path / f"crf{crf}.mp4"
        _run(tiny_card, clip, out, crf=crf, preset="ultrafast")
        sizes[crf] = out.stat().st_size
    assert sizes[0] > 1.5 * sizes[40]


@pytest.mark.parametrize(
    ("flags", "msg"),
    [(["--crf", "60"], "--crf must be 0..51"), (["--preset", "warp"], "unknown --preset")],
)
def test_bad_encoder_flags(tmp_path, clip, flags, msg, capsys):
    assert main(["process", str(clip), "-o", str(tmp_path / "o.mp4"), *flags]) == 1
    assert msg in capsys.readouterr().err


def test_mask_only_writes_the_matte(tmp_path, clip, tiny_card):
    out = tmp_path / "mask.mp4"
    _run(tiny_card, clip, out, mode="mask", crf=0)
    want = _mask_of(tiny_card, clip)
    with av.open(str(out)) as c:
        got = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(got) == len(want)
    # H.264 at crf 0 in yuv420p: the luma is near-exact (limited-range rounding only).
    assert np.abs(got[2].astype(int) - want[2]).mean() < 3


def test_alpha_png_sequence_matches_the_matte(tmp_path, clip, tiny_card):
    out = tmp_path / "frames"
    _run(tiny_card, clip, out, mode="alpha")
    files = sorted(out.glob("*.png"))
    want = _mask_of(tiny_card, clip)
    assert len(files) == len(want)
    rgba = cv2.imread(str(files[3]), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (64, 96, 4)
    np.testing.assert_array_equal(rgba[:, :, 3], want[3])
    assert not (tmp_path / "frames.partial").exists()


@pytest.mark.skipif(not codec_available(".webm"), reason="no libvpx-vp9 in this PyAV")
def test_alpha_webm_alpha_plane_matches_the_matte(tmp_path, clip, tiny_card):
    out = tmp_path / "person.webm"
    _run(tiny_card, clip, out, mode="alpha")
    want = _mask_of(tiny_card, clip)
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        # FFmpeg's native VP9 decoder drops the alpha side data; libvpx decodes it.
        ctx = av.CodecContext.create("libvpx-vp9", "r")
        frames = []
        for packet in c.demux(stream):
            for f in ctx.decode(packet):
                frames.append(f)
        with contextlib.suppress(EOFError):  # flushing an already drained decoder
            frames += ctx.decode(None)
    assert len(frames) == len(want)
    assert frames[0].format.name == "yuva420p"
    plane = frames[3].planes[3]
    a = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:64, :96]
    # Lossy VP9 (crf 20) on a hard left/right matte: the plane agrees but for the edge.
    assert np.mean(np.abs(a.astype(int) - want[3])) < 8


@pytest.mark.skipif(not codec_available(".mov"), reason="no prores_ks in this PyAV")
def test_alpha_prores_has_an_alpha_plane(tmp_path):
    out = tmp_path / "p.mov"
    sink = AlphaVideoSink(out, 10, 32, 16)
    img = np.zeros((16, 32, 4), np.uint8)
    img[:, :16, 3] = 255
    for i in range(3):
        sink.write(img, i / 10)
    sink.close()
    with av.open(str(out)) as c:
        f = next(c.decode(video=0))
        assert "a" in f.format.name  # yuva444p10le
        rgba = f.to_ndarray(format="rgba")
    assert rgba[8, 4, 3] == 255 and rgba[8, 28, 3] == 0


def test_alpha_output_rejects_formats_without_alpha(tmp_path, clip, capsys):
    assert main(["process", str(clip), "-o", str(tmp_path / "o.mp4"), "--output-alpha"]) == 1
    assert "--output-alpha writes .webm" in capsys.readouterr().err
    assert (
        main(["process", str(clip), "-o", str(tmp_path / "o.mp4"), "--output-alpha", "--mask-only"])
        == 1
    )
    assert "exclude each other" in capsys.readouterr().err


def test_png_sequence_abort_leaves_nothing(tmp_path):
    sink = PngSequenceSink(tmp_path / "seq")
    sink.write(np.zeros((4, 4, 4), np.uint8))
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_image_with_alpha_and_report_line(tmp_path, tiny_card, caplog):
    img = np.full((64, 96, 3), 90, np.uint8)
    src = tmp_path / "photo.jpg"
    cv2.imwrite(str(src), img)
    out = tmp_path / "cut.png"
    _run(tiny_card, src, out, mode="alpha")
    rgba = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (64, 96, 4)
    assert rgba[:, :40, 3].min() == 255 and rgba[:, 60:, 3].max() == 0
    with pytest.raises(VbgError, match="JPEG has no alpha"):
        _run(tiny_card, src, tmp_path / "cut.jpg", mode="alpha")


def test_live_recording_refuses_existing_file(tmp_path):
    from vbg.pipeline import check_outputs

    rec = tmp_path / "call.mp4"
    rec.write_bytes(b"x")
    with pytest.raises(VbgError, match="--overwrite"):
        check_outputs(["preview", str(rec)], overwrite=False)
    check_outputs(["preview", str(rec)], overwrite=True)

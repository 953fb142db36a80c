"""The GPU path's tensor code, run on torch's CPU device against the NumPy/OpenCV path.

Every stage of vbg.device_path is checked against the host stage it mirrors, on the same
inputs; then the whole path against the host pipeline on real frames of the sample clip
with the bundled default model. A GPU runs the same code (benchmarks/gpu.py repeats the
whole-path comparison there).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from vbg import device_path as dp  # noqa: E402
from vbg.temporal import TemporalConfig, TemporalSmoother, ellipse_kernel  # noqa: E402

RNG = np.random.default_rng(0)


def planar(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) or (H, W) uint8/float -> (1, C, H, W) float32 tensor."""
    t = torch.from_numpy(np.ascontiguousarray(img)).float()
    return t.permute(2, 0, 1)[None] if t.ndim == 3 else t[None, None]


def back(t: torch.Tensor) -> np.ndarray:
    a = t[0].numpy()
    return a.transpose(1, 2, 0) if a.shape[0] == 3 else a[0]


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    # A smooth picture with edges (not noise: resizes of noise differ most in rounding).
    y, x = np.mgrid[0:180, 0:320]
    img = np.dstack([(x * 0.8) % 256, (y * 1.4) % 256, ((x + y) * 0.5) % 256])
    img[40:140, 100:220] = (30, 200, 90)
    return img.astype(np.uint8)


def test_gray_is_exactly_opencvs(frame):
    want = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    got = back(dp.gray(planar(frame)))
    assert np.array_equal(got.astype(np.uint8), want)


def test_box_filter_matches_opencv_reflect_border():
    x = RNG.random((23, 37), dtype=np.float32)
    want = cv2.boxFilter(x, -1, (5, 5), borderType=cv2.BORDER_REFLECT)
    got = back(dp.box_reflect(planar(x), 2))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_box_sum_matches_opencv_default_border():
    x = RNG.random((23, 37), dtype=np.float32)
    want = cv2.boxFilter(x, -1, (7, 7), normalize=False)
    np.testing.assert_allclose(back(dp.box_sum(planar(x), 7)), want, atol=1e-4)


@pytest.mark.parametrize("radius", [1, 2])
@pytest.mark.parametrize("op", ["erode", "dilate"])
def test_morphology_matches_opencv(radius, op):
    x = RNG.random((30, 41), dtype=np.float32)
    k = ellipse_kernel(radius)
    want = (cv2.erode if op == "erode" else cv2.dilate)(x, k)
    np.testing.assert_array_equal(back(dp.morph(planar(x), k, op)), want)


def test_square_morphology_with_replicated_border_matches_opencv():
    x = (RNG.random((30, 41)) * 255).round().astype(np.float32)
    k = np.ones((3, 3), np.uint8)
    for op, fn in (("erode", cv2.erode), ("dilate", cv2.dilate)):
        want = fn(x, k, borderType=cv2.BORDER_REPLICATE)
        np.testing.assert_array_equal(back(dp.morph_replicate(planar(x), 1, op)), want)


@pytest.mark.parametrize("k", [3, 9, 15])
def test_gaussian_blur_matches_opencv(k):
    x = RNG.random((40, 64), dtype=np.float32) * 255
    want = cv2.GaussianBlur(x, (k, k), 0)
    np.testing.assert_allclose(back(dp.gaussian_blur(planar(x), k)), want, atol=1e-3)


def test_area_shrink_within_a_grey_level_of_the_host_shrinker(frame):
    from vbg.resize import AreaShrinker

    big = cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR)
    want = AreaShrinker()(big, (288, 160))
    got = back(dp.area_shrink(planar(big), (160, 288)))
    assert np.abs(got - want).max() <= 1


def test_guided_upsampling_matches_the_host_filter(frame):
    from vbg.guided import GUIDED_EPS, GUIDED_RADIUS, GuidedUpsampler

    big = cv2.resize(frame, (640, 360), interpolation=cv2.INTER_LINEAR)
    g_big = cv2.cvtColor(big, cv2.COLOR_BGR2GRAY)
    g_small = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    prob = np.zeros((180, 320), np.float32)
    prob[40:140, 100:220] = 1.0
    prob = cv2.GaussianBlur(prob, (7, 7), 0)
    want = GuidedUpsampler()(prob, g_big, g_small)
    got = dp.guided_upsample(
        planar(prob), planar(g_small), planar(g_big), GUIDED_RADIUS, GUIDED_EPS
    )
    diff = np.abs(back(got) - want)
    assert diff.mean() < 0.05 and diff.max() <= 2


def test_bounds_match_the_host_clamp():
    from vbg.cleanup import MatteBounds

    prob = np.zeros((45, 80), np.float32)
    prob[10:35, 20:60] = 0.9
    prob = cv2.GaussianBlur(prob, (5, 5), 0)
    matte = (RNG.random((180, 320)) * 255).astype(np.uint8)
    bounds = MatteBounds()
    want = bounds(prob, matte.copy())
    got = back(dp.bound_matte(planar(prob), planar(matte), 1, bounds._lut))
    diff = np.abs(got - want)
    assert (diff > 1).mean() < 0.002 and diff.max() <= 8


def test_blend_halo_free_blur_and_light_wrap_match_the_host(frame):
    from vbg.backgrounds import parse_background
    from vbg.blur import HaloFreeBlur
    from vbg.compose import Compositor
    from vbg.lightwrap import LightWrap

    alpha = np.zeros(frame.shape[:2], np.uint8)
    cv2.circle(alpha, (160, 90), 60, 255, -1)
    alpha = cv2.GaussianBlur(alpha, (9, 9), 0)
    bg = np.ascontiguousarray(frame[::-1, ::-1])
    host = Compositor(parse_background("color:#00b140"), frame.shape[:2], light_wrap=False)
    want = host.blend(frame, bg, alpha)
    got = dp.blend(planar(frame), planar(bg), planar(alpha))
    assert np.abs(back(got) - want).max() <= 1

    want_blur = HaloFreeBlur(31)(frame, alpha)
    got_blur = dp.halo_free_blur(planar(frame), planar(alpha), 31)
    assert np.abs(back(got_blur) - want_blur).mean() < 0.5

    wrap = LightWrap()
    wrap.set_background(bg)
    out = want.copy()
    wrap(out, alpha)
    r = max(1, round(wrap.radius_frac * 180 / 4))
    got_wrap = dp.light_wrap(
        planar(want), planar(alpha), planar(wrap._bg_blur), wrap.strength, 2 * r + 1
    )
    diff = np.abs(back(got_wrap) - out)
    assert diff.max() <= 3 and (out != want).any()  # the wrap did change the edge band


def test_decontamination_matches_the_host():
    from vbg.edges import EdgeColors

    y, x = np.mgrid[0:180, 0:320]
    img = np.dstack([x % 256, y % 256, (x * 3) % 256]).astype(np.uint8)
    alpha = np.zeros((180, 320), np.uint8)
    cv2.circle(alpha, (160, 90), 60, 255, -1)
    alpha = cv2.GaussianBlur(alpha, (15, 15), 0)
    want = EdgeColors()(img, alpha)
    got = back(dp.decontaminate(planar(img), planar(alpha)))
    diff = np.abs(got - want)
    assert (want != img).any()  # the band was decontaminated at all
    assert diff.mean() < 0.1 and (diff > 2).mean() < 0.001


@pytest.mark.parametrize("mode", ["adaptive", "ema"])
def test_device_temporal_follows_the_host_smoother_through_a_scene_cut(mode):
    cfg = TemporalConfig(mode=mode)
    host, dev = TemporalSmoother(cfg), dp.DeviceTemporal(cfg)
    base = np.zeros((40, 64), np.float32)
    base[10:30, 20:44] = 1.0
    for i in range(12):
        p = np.roll(base, i, axis=1) * 0.9 + RNG.random((40, 64), dtype=np.float32) * 0.1
        if i == 7:  # a new scene: the cut detector resets both
            p = 1.0 - p
        want = host(p)
        got = back(dev(planar(p)))
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert host.cuts == 2  # into the new scene and back


# --- the whole path on real frames --------------------------------------------------------


@pytest.fixture(scope="module")
def clip_frames(sample_clip) -> list[np.ndarray]:
    from vbg.sources import open_input

    src = open_input(sample_clip)
    frames = [f.image for _, f in zip(range(10), src, strict=False)]
    src.close()
    return frames


def _processors(background: str, **kw):
    from vbg.framing import Framing
    from vbg.pipeline import build_processor

    host = build_processor(
        None, engine="torch", background=background, framing=Framing(align="center"), **kw
    )
    dev = build_processor(
        None,
        engine="torch",
        background=background,
        framing=Framing(align="center"),
        device_path=True,
        **kw,
    )
    return host, dev


@pytest.mark.slow
@pytest.mark.parametrize(
    "background", ["color:#00b140", "assets/backgrounds/berlin-cathedral.jpg", "blur"]
)
def test_whole_device_path_matches_the_host_pipeline(clip_frames, background):
    torch.set_num_threads(2)
    host, dev = _processors(background, tta=True, decontaminate=True)
    assert type(dev).__name__ == "DeviceFrameProcessor"
    ious, p999 = [], []
    for f in clip_frames:
        want = host.process(f).copy()
        got = dev.process(f)
        diff = np.abs(got.astype(int) - want)
        p999.append(np.percentile(diff, 99.9))
    for f in clip_frames[:4]:
        a, b = host.mask(f) >= 128, dev.mask(f) >= 128
        ious.append((a & b).sum() / max((a | b).sum(), 1))
    host.close()
    dev.close()
    assert min(ious) >= 0.99
    assert max(p999) <= 3  # composites within a few grey levels (rounding at the edge)


@pytest.mark.slow
def test_batches_give_the_same_frames_as_one_at_a_time(clip_frames):
    _, one = _processors("color:#00b140")
    _, many = _processors("color:#00b140")
    singles = [one.process(f).copy() for f in clip_frames[:6]]
    batched = many.process_batch(np.stack(clip_frames[:6]))
    for a, b in zip(singles, batched, strict=True):
        # The network batched: oneDNN may pick another convolution kernel for a batch of 6
        # than for 1 (seen on an Intel Xeon: one pixel of 486,000 one grey level off), so
        # the frames are the same up to that float rounding, not bit for bit.
        d = np.abs(a.astype(int) - b)
        assert d.max() <= 1 and (d > 0).mean() < 1e-5
    one.close()
    many.close()


def test_options_without_a_device_form_keep_the_frame_on_the_host(tiny_card):
    from vbg import VbgError
    from vbg.pipeline import build_processor

    with pytest.raises(VbgError, match="harmonize"):
        build_processor(tiny_card, engine="torch", harmonize=True, device_path=True)
    with pytest.raises(VbgError, match="no run_tensor"):
        build_processor(tiny_card, engine="openvino", device_path=True)
    # Auto: a CPU engine never takes the device path.
    proc = build_processor(tiny_card, engine="torch")
    assert type(proc).__name__ == "FrameProcessor"
    proc.close()


def test_the_live_loop_runs_on_the_device_path_and_switches_backgrounds(tiny_card):
    """run_live with a DeviceFrameProcessor (torch's CPU device): every frame reaches the
    sink at one size; switching the background afterwards changes the picture."""
    from tests.vbg.test_pipeline import FakeSource, RecordingSink
    from vbg.pipeline import LiveOptions, build_processor, run_live

    proc = build_processor(tiny_card, engine="torch", background="color:#00ff00", device_path=True)
    assert type(proc).__name__ == "DeviceFrameProcessor"
    sink = RecordingSink()
    res = run_live(
        FakeSource(6),
        processor=proc,
        options=LiveOptions(outputs=[sink], backgrounds=["color:#00ff00", "blur"]),
    )
    assert res.frames == 6 and len(sink.frames) == 6
    assert len({f.shape for f in sink.frames}) == 1
    frame = np.full((72, 96, 3), 120, np.uint8)
    green = proc.process(frame).copy()
    proc.set_background("color:#0000ff")
    assert not np.array_equal(proc.process(frame), green)
    proc.close()


def test_frames_off_a_gpu_try_nvenc_then_x264(tmp_path, sample_clip, caplog):
    import logging

    from vbg.outputs import OutputOptions
    from vbg.pipeline import _open_video_sink
    from vbg.sources import open_input

    src = open_input(sample_clip)
    with caplog.at_level(logging.INFO, logger="vbg.pipeline"):
        sink = _open_video_sink(tmp_path / "o.mp4", src, sample_clip, OutputOptions(), gpu=True)
    src.close()
    if sink.encoder == "h264_nvenc":  # a machine with an NVIDIA GPU and driver
        assert "unavailable" not in caplog.text
    else:
        assert sink.encoder == "libx264"
        if "h264_nvenc" in __import__("av").codecs_available:
            assert "encoder h264_nvenc unavailable" in caplog.text
    sink.abort()
    assert list(tmp_path.iterdir()) == []  # the failed attempt left no partial file

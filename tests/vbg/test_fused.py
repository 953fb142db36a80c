"""The compiled passes (vbg.fused) against the OpenCV passes they replace on the hot path."""

from __future__ import annotations

import cv2
import numba
import numpy as np
import pytest

from vbg import fused
from vbg.backgrounds import BackgroundSpec
from vbg.bench import synthetic_frames
from vbg.compose import Compositor
from vbg.refine import Refiner

H, W = 720, 1280


def _prob(frame: np.ndarray, h: int = 160, w: int = 288) -> np.ndarray:
    """A smooth probability of the figure synthetic_frames draws (skin and shirt)."""
    small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    person = (np.abs(small - (120, 150, 200)).sum(-1) < 60) | (
        np.abs(small - (150, 60, 40)).sum(-1) < 60
    )
    return cv2.GaussianBlur(person.astype(np.float32), (5, 5), 0)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return synthetic_frames(W, H, count=4)


@pytest.mark.parametrize(
    "src,dst", [((160, 288), (720, 1280)), ((45, 80), (90, 162)), ((7, 9), (7, 9))]
)
def test_linear_taps_are_opencvs_bilinear_resize(src, dst):
    rng = np.random.default_rng(1)
    m = rng.random(src, dtype=np.float32)
    t = fused.Taps(src, dst)
    assert len(t.x0) % fused.GROUP == 0  # padded to whole groups
    x0, x1, wx = t.x0[: dst[1]], t.x1[: dst[1]], t.wx[: dst[1]]
    top = m[t.y0][:, x0] * (1 - wx) + m[t.y0][:, x1] * wx
    bot = m[t.y1][:, x0] * (1 - wx) + m[t.y1][:, x1] * wx
    mine = top * (1 - t.wy[:, None]) + bot * t.wy[:, None]
    ref = cv2.resize(m, dst[::-1], interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(mine, ref, atol=1e-5)


def test_div255_is_rounded_division_for_every_product():
    # Checked through the blend at alpha 255 - a: every x = f * a + b * (255 - a) occurs.
    x = np.arange(255 * 255 + 1, dtype=np.int64)
    want = (x + 127) // 255  # 255 is odd: no ties
    got = np.array([fused._div255(int(v)) for v in x[::97]])
    np.testing.assert_array_equal(got, want[::97])


def test_compiled_matte_matches_the_opencv_passes(frames):
    fast, ref = Refiner(), Refiner(compiled=False)
    for f in frames:
        prob = _prob(f)
        small = cv2.resize(f, (288, 160), interpolation=cv2.INTER_AREA)
        a = fast(prob, f, small).copy()
        b = ref(prob, f, small)
        d = np.abs(a.astype(int) - b)
        # Rounding of the bounds' fixed-point upsampling in OpenCV, amplified by the levels.
        assert d.max() <= 3
        assert (d > 1).mean() < 1e-3
        assert ((a >= 128) != (b >= 128)).mean() < 1e-4
        assert (a > 0).any() and (a == 0).any()  # not trivially all one value


def _image_spec(tmp_path, frame: np.ndarray) -> BackgroundSpec:
    rng = np.random.default_rng(2)
    img = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (0, 0), 3)
    path = tmp_path / "bg.png"
    cv2.imwrite(str(path), img)
    return BackgroundSpec(kind="image", path=str(path))


@pytest.mark.parametrize("width", [W, 1270])  # whole groups (word copies), and not
def test_compiled_composite_with_light_wrap_matches_the_opencv_passes(frames, tmp_path, width):
    spec = _image_spec(tmp_path, frames[0])
    fast = Compositor(spec, (H, width))
    ref = Compositor(spec, (H, width), compiled=False)
    refiner = Refiner()
    for f in frames:
        f = np.ascontiguousarray(f[:, :width])
        alpha = refiner(_prob(f), f)
        a = fast(f, alpha).copy()
        b = ref(f, alpha)
        d = np.abs(a.astype(int) - b)
        assert d.max() <= 3 and (d > 1).mean() < 5e-3
        # Where alpha is 0 the output is the background, exactly.
        np.testing.assert_array_equal(a[alpha == 0], fast.background[alpha == 0])
        # The light wrap did act: inside the edge the output is not the plain blend.
        plain = Compositor(spec, (H, width), light_wrap=False)(f, alpha)
        assert (a != plain).any()


def test_compiled_blend_rounds_once(frames):
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (64, 96), dtype=np.uint8)
    alpha[:8, :] = 0  # whole groups of 8: the copy paths
    alpha[8:16, :] = 255
    comp = Compositor(BackgroundSpec(kind="color", color_bgr=(3, 250, 77)), (64, 96))
    a = alpha[..., None].astype(np.int64)
    want = (frame * a + np.array([3, 250, 77]) * (255 - a) + 127) // 255
    np.testing.assert_array_equal(comp(frame, alpha), want)


def test_any_width_takes_the_compiled_matte_and_odd_layouts_the_opencv_passes(frames):
    # Width 1270 (a 480p video is 854 wide): the matte pass pads its rows to whole groups.
    f = np.ascontiguousarray(frames[0][:, :1270])
    prob = _prob(f)
    a, b = Refiner()(prob, f), Refiner(compiled=False)(prob, f)
    assert a.shape == b.shape == (H, 1270)
    d = np.abs(a.astype(int) - b)
    assert d.max() <= 3 and (d > 1).mean() < 1e-3
    # The composite goes a uint64 word at a time only at widths of whole groups; here
    # (and for the matte, a view of padded rows) byte by byte: the same frame.
    assert not fused.fits(f) and not fused.fits(a)
    assert not fused.fits(frames[0][:, ::2])
    assert fused.fits(frames[0])
    spec = BackgroundSpec(kind="color", color_bgr=(0, 177, 64))
    c = Compositor(spec, (H, 1270))(f, a)
    a3 = a[..., None].astype(np.int64)
    want = (f * a3 + np.array([0, 177, 64]) * (255 - a3) + 127) // 255
    np.testing.assert_array_equal(c, want)
    # A frame not in C order takes the OpenCV matte passes, exactly.
    g = frames[1][:, ::-1]
    np.testing.assert_array_equal(Refiner()(_prob(g), g), Refiner(compiled=False)(_prob(g), g))


def test_one_thread_and_two_give_the_same_frame(frames, tmp_path):
    spec = _image_spec(tmp_path, frames[0])
    f = frames[1]
    outs = []
    before = numba.get_num_threads()
    try:
        for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(n)
            alpha = Refiner()(_prob(f), f).copy()
            outs.append((alpha, Compositor(spec, (H, W))(f, alpha).copy()))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


def test_temporal_kernels_match_their_formulas():
    rng = np.random.default_rng(4)
    prob = rng.random((40, 60), dtype=np.float32)
    state = rng.random((40, 60), dtype=np.float32)
    d = prob - state
    want = state + d * (np.minimum(np.abs(d), 0.5) * (0.75 / 0.5) + 0.25)
    fused.adaptive_blend(prob, state, 0.25, 0.5)
    np.testing.assert_allclose(state, want, atol=1e-6)

    out = rng.random((40, 60), dtype=np.float32)
    side = (rng.random((40, 60)) > 0.5).astype(np.uint8)
    tent = np.maximum(1 - np.abs(out - 0.5) / 0.2, 0)
    want = np.clip(out + tent * np.where(side == 1, 0.1, -0.1), 0, 1)
    fused.hysteresis(out, side, 0.1, True)
    np.testing.assert_allclose(out, want, atol=1e-6)
    np.testing.assert_array_equal(side, (want >= 0.5).astype(np.uint8))


def test_kept_background_is_never_stale(frames, tmp_path):
    # The compositor leaves the still background in its output buffer where the person
    # did not cover it; a person that moves, a new background, a switch to blur and back:
    # every output must equal what a fresh compositor writes in full.
    spec = _image_spec(tmp_path, frames[0])
    other = BackgroundSpec(kind="color", color_bgr=(0, 177, 64))
    blur = BackgroundSpec(kind="blur", blur_ksize=15)
    comp = Compositor(spec, (H, W))
    refiner = Refiner()
    steps = [spec, spec, spec, other, other, blur, spec, spec, spec]
    for i, s in enumerate(steps):
        f = frames[i % len(frames)]
        # The person moves right and back: where it stood is background again next frame.
        alpha = refiner(np.roll(_prob(f), 24 * (i % 2), axis=1), f).copy()
        if s is not comp.spec:
            comp.set_background(s)
        got = comp(f, alpha)
        want = Compositor(s, (H, W))(f, alpha)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError):
        got[0, 0, 0] = 1  # handed out read-only: nothing else may write there


def test_warm_up_compiles_every_pass_the_frames_use():
    from vbg import fused_input
    from vbg.pipeline import warm_up_hot_path

    warm_up_hot_path()
    for kernel in (fused.matte_rows, fused.composite_rows, fused.adaptive_blend,
                   fused.hysteresis, fused.drop_specks, fused.fill_holes,
                   fused_input.quarter_rows, fused_input.halve_rows,
                   fused_input.linear_normalize):  # fmt: skip
        assert kernel.signatures, kernel

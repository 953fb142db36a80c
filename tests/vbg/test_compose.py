from __future__ import annotations

import cv2
import numpy as np
import pytest

from vbg import VbgError
from vbg.backgrounds import BackgroundSpec, cover_fit, parse_background, parse_color
from vbg.compose import Compositor

H, W = 36, 64


def _color(bgr=(16, 32, 48)):
    return BackgroundSpec(kind="color", color_bgr=bgr)


def _frame(v=(200, 100, 0), h=H, w=W):
    f = np.empty((h, w, 3), np.uint8)
    f[...] = v
    return f


def _alpha(v, h=H, w=W):
    return np.full((h, w), v, np.uint8)


def test_blend_by_hand_at_0_255_128():
    comp = Compositor(_color((16, 32, 48)), (H, W))
    frame = _frame((200, 100, 0))
    np.testing.assert_array_equal(comp(frame, _alpha(0)), _frame((16, 32, 48)))
    np.testing.assert_array_equal(comp(frame, _alpha(255)), frame)
    # round((f * 128 + b * 127) / 255): 200,16 -> 108.37 -> 108; 100,32 -> 66.13 -> 66;
    # 0,48 -> 23.91 -> 24
    np.testing.assert_array_equal(comp(frame, _alpha(128)), _frame((108, 66, 24)))


def test_opencv_blend_is_two_rounded_uint8_terms():
    # The OpenCV passes (Compositor.blend: the path for frames the compiled pass does not
    # take); the compiled one rounds once (tests/vbg/test_fused.py).
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (H, W), dtype=np.uint8)
    comp = Compositor(_color((3, 250, 77)), (H, W), compiled=False)
    a = alpha[..., None].astype(np.int64)
    # round(f * a / 255) + round(b * (255 - a) / 255); 255 is odd, so no term is a tie.
    want = (2 * frame.astype(np.int64) * a + 255) // 510 + (
        2 * np.array([3, 250, 77]) * (255 - a) + 255
    ) // 510
    np.testing.assert_array_equal(comp(frame, alpha), np.minimum(want, 255))


def test_blend_within_one_grey_level_of_the_exact_blend_for_every_triple():
    # Every (frame, background, alpha) value triple: the uint8 blend is never more than one
    # grey level from the exact one (what the float cv2.blendLinear path produced before),
    # exact at alpha 0 and 255, and unbiased. Row = alpha, and the 65536 (frame,
    # background) pairs spread over the columns and the 3 channels.
    pairs = np.arange(3 * 21846) % 65536
    f = (pairs >> 8).astype(np.uint8).reshape(21846, 3)
    b = (pairs & 255).astype(np.uint8).reshape(21846, 3)
    h, w = 256, f.shape[0]
    frame = np.ascontiguousarray(np.broadcast_to(f, (h, w, 3)))
    alpha = np.repeat(np.arange(256, dtype=np.uint8)[:, None], w, axis=1)
    comp = Compositor(_color((0, 0, 0)), (h, w))
    comp.background[...] = b  # the fitted-background buffer, filled by hand
    a = alpha[..., None].astype(np.int32)
    want = (frame * a + b.astype(np.int32) * (255 - a) + 127) // 255
    diff = comp(frame, alpha).astype(np.int32) - want
    assert np.abs(diff).max() <= 1
    assert not diff[0].any() and not diff[255].any()
    assert abs(diff.mean()) < 0.01


def test_output_buffer_is_reused():
    comp = Compositor(_color(), (H, W))
    a = comp(_frame(), _alpha(10))
    b = comp(_frame((1, 2, 3)), _alpha(200))
    assert a is b
    before = comp.background
    comp(_frame(), _alpha(5))
    assert comp.background is before  # the background is not re-made per frame


def test_new_frame_size_reallocates_once():
    comp = Compositor(_color(), (H, W))
    out = comp(_frame(h=20, w=30), _alpha(0, 20, 30))
    assert out.shape == (20, 30, 3)
    assert comp.size == (20, 30)
    assert comp(_frame(h=20, w=30), _alpha(0, 20, 30)) is out


def test_image_background_is_cover_fitted_once(tmp_path):
    img = np.zeros((100, 400, 3), np.uint8)  # 4:1 panorama
    img[:, 150:250] = (0, 255, 0)  # green band in the centre
    p = tmp_path / "pano.png"
    cv2.imwrite(str(p), img)
    comp = Compositor(BackgroundSpec(kind="image", path=p), (100, 100))
    out = comp(_frame(h=100, w=100), _alpha(0, 100, 100))
    # Cover-fit of 400x100 into 100x100: keep the height, crop the centre 100 columns.
    np.testing.assert_array_equal(out, img[:, 150:250])
    np.testing.assert_array_equal(comp.background, cover_fit(img, 100, 100))


def test_blur_mode_blurs_the_frame_itself():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (144, 256, 3), dtype=np.uint8)
    comp = Compositor(BackgroundSpec(kind="blur", blur_ksize=41), (144, 256))
    bg = comp(frame, _alpha(0, 144, 256)).copy()
    assert bg.std() < frame.std() / 4  # noise is smoothed away
    assert abs(float(bg.mean()) - float(frame.mean())) < 3  # colours kept
    np.testing.assert_array_equal(comp(frame, _alpha(255, 144, 256)), frame)
    # A new frame gives a new blurred background.
    bg2 = comp(np.zeros_like(frame), _alpha(0, 144, 256))
    assert bg2.max() == 0


def test_small_blur_kernel_without_downscale():
    frame = _frame((10, 20, 30))
    comp = Compositor(BackgroundSpec(kind="blur", blur_ksize=3), (H, W))
    np.testing.assert_array_equal(comp(frame, _alpha(0)), frame)  # a flat frame stays flat


def test_set_background_switches():
    comp = Compositor(_color((0, 0, 0)), (H, W))
    comp.set_background(_color((9, 9, 9)))
    np.testing.assert_array_equal(comp(_frame(), _alpha(0)), _frame((9, 9, 9)))
    comp.set_background(parse_background("paris-eiffel-tower"))
    assert comp(_frame(), _alpha(0)).std() > 0


def test_bad_inputs():
    comp = Compositor(_color(), (H, W))
    with pytest.raises(TypeError):
        comp(_frame().astype(np.float32), _alpha(0))
    with pytest.raises(ValueError):
        comp(_frame(), _alpha(0, H + 1, W))
    with pytest.raises(ValueError):
        comp(np.zeros((H, W), np.uint8), _alpha(0))


@pytest.mark.parametrize("target", [(100, 100), (300, 100), (90, 160), (1080, 1920), (7, 3)])
def test_cover_fit_never_stretches(target):
    img = np.zeros((200, 300, 3), np.uint8)
    cv2.circle(img, (150, 100), 60, (255, 255, 255), -1)
    h, w = target
    out = cover_fit(img, h, w)
    assert out.shape == (h, w, 3) and out.flags["C_CONTIGUOUS"]
    s = max(h / 200, w / 300)  # the one scale for both axes
    diameter = 121 * s  # cv2.circle of radius 60 covers 121 px
    ys, xs = np.nonzero(out[..., 0] > 127)
    if min(h, w) < 50:
        return  # too small to measure a circle; the shape check above still applies
    dy, dx = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    measured = 0
    if diameter < h - 2:  # the circle fits vertically: its height is the scaled diameter
        assert abs(dy - diameter) <= 1 + s
        measured += 1
    if diameter < w - 2:
        assert abs(dx - diameter) <= 1 + s
        measured += 1
    assert measured >= 1


def test_cover_fit_exact_crop_and_scale():
    img = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    np.testing.assert_array_equal(cover_fit(img, 100, 100), img[:, 50:150])
    np.testing.assert_array_equal(cover_fit(img, 100, 200), img)
    assert cover_fit(img, 50, 100).shape == (50, 100, 3)


def test_color_parse():
    assert parse_color("#00b140") == (0x40, 0xB1, 0x00)
    assert parse_color("00B140") == (0x40, 0xB1, 0x00)
    assert parse_color("#abc") == (0xCC, 0xBB, 0xAA)
    for bad in ("#12345", "green", "#gg0000", ""):
        with pytest.raises(VbgError, match="bad colour"):
            parse_color(bad)
    spec = parse_background("color:#102030")
    assert spec.kind == "color" and spec.color_bgr == (0x30, 0x20, 0x10)
    assert spec.describe() == "color:#102030"

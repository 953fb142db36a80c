from __future__ import annotations

import cv2
import numpy as np

from vbg.cleanup import ComponentFilter, MatteBounds
from vbg.guided import GuidedUpsampler
from vbg.refine import Refiner


def _ghost_scene(H=240, W=320):
    """A bright person (x < 150) on a mid wall with a bright picture frame edge at x = 176,
    inside the guided filter's window of the outline; the model is sure the frame is
    background."""
    guide = np.full((H, W), 120, np.uint8)
    guide[:, :150] = 220
    guide[:, 176:] = 250  # the picture frame
    truth = np.zeros((H, W), np.float32)
    truth[:, :150] = 1
    small = cv2.resize(truth, (W // 8, H // 8), interpolation=cv2.INTER_AREA)
    prob = cv2.GaussianBlur(small, (5, 5), 1.0).astype(np.float32)
    return guide, truth, prob


def test_bounds_remove_the_ghost_on_a_background_edge():
    guide, truth, prob = _ghost_scene()
    raw = GuidedUpsampler()(prob, guide).copy()
    far = np.zeros_like(truth, bool)
    far[:, 176:] = True  # 26+ px outside the person, on the frame
    assert raw[far].max() > 20  # the plain guided filter paints a ghost onto the frame
    out = MatteBounds()(prob, raw.copy())
    assert out[far].max() == 0
    # The person itself is untouched: still fully opaque away from its edge.
    assert (out[:, :130] == 255).all()


def test_levels_snap_near_zero_and_near_one():
    prob = np.indices((4, 4)).sum(axis=0).astype(np.float32) % 2  # bounds 0..255 everywhere
    m = np.array([[0, 3, 8, 9], [128, 200, 247, 252]] * 2, np.uint8)
    out = MatteBounds(black=8)(prob, m.copy())
    assert out[0, :3].tolist() == [0, 0, 0] and out[0, 3] > 0
    assert out[1, 3] == 255 and out[1, 2] == 255
    assert abs(int(out[1, 0]) - 128) <= 1  # the middle stays where it was


def test_component_filter_sizes_are_relative_to_the_frame():
    for scale in (1, 3):  # the same picture at two resolutions gives the same answer
        h, w = 90 * scale, 160 * scale
        prob = np.zeros((h, w), np.float32)
        prob[20 * scale :, 40 * scale : 100 * scale] = 1.0  # the person
        prob[30 * scale : 40 * scale, 60 * scale : 70 * scale] = 0.0  # a hole, 0.7 %
        prob[5 * scale : 9 * scale, 130 * scale : 134 * scale] = 0.9  # a speck, 0.1 %
        prob[50 * scale : 80 * scale, 120 * scale : 150 * scale] = 0.8  # a second person, 6 %
        out = ComponentFilter(min_area=0.01, max_hole=0.01)(prob.copy())
        assert out[7 * scale, 132 * scale] == 0.0  # speck gone
        assert out[35 * scale, 65 * scale] == 1.0  # hole filled
        assert out[60 * scale, 130 * scale] == 0.8  # large region kept
        assert out[0, 0] == 0.0  # the background touching the border is not a hole
        assert out[50 * scale, 60 * scale] == 1.0


def test_refiner_erode_then_feather_pulls_the_edge_in():
    prob = np.zeros((9, 16), np.float32)
    prob[:, :8] = 1.0
    frame = np.zeros((72, 128, 3), np.uint8)
    plain = Refiner(edges="bilinear").__call__(prob, frame).copy()
    eroded = Refiner(edges="bilinear", erode_px=3, feather_px=2)(prob, frame)
    assert eroded.sum() < plain.sum()
    assert (eroded[:, :50] == 255).all()


def _reference_components(prob, min_area, max_hole):
    """The plain (allocating) formulation of ComponentFilter, to check the buffered one."""
    from vbg.cleanup import SUPPORT

    prob = prob.copy()
    n_px = prob.size
    n, labels = cv2.connectedComponents((prob >= SUPPORT).astype(np.uint8), connectivity=8)
    core = np.bincount(labels[prob >= 0.5], minlength=n)
    small = core < min_area * n_px
    small[0] = False
    prob[small[labels]] = 0.0
    hole = (prob < 0.5).astype(np.uint8)
    n, labels, st, _ = cv2.connectedComponentsWithStats(hole, connectivity=4)
    h, w = hole.shape
    x, y, bw, bh, area = (st[1:, k] for k in range(5))
    fill = (area < max_hole * n_px) & ~((x == 0) | (y == 0) | (x + bw == w) | (y + bh == h))
    sel = np.zeros(n, np.uint8)
    sel[1:][fill] = 1
    prob[cv2.dilate(sel[labels], np.ones((3, 3), np.uint8)) > 0] = 1.0
    return prob


def test_component_filter_matches_the_plain_formulation_on_random_mattes():
    rng = np.random.default_rng(0)
    f = ComponentFilter(0.01, 0.005)
    for _ in range(60):
        p = rng.random((80, 120)).astype(np.float32)
        p = cv2.GaussianBlur(p, (0, 0), rng.uniform(1, 6))
        p = (p - p.min()) / (p.max() - p.min() + 1e-6)
        p = np.clip((p - rng.uniform(0.3, 0.7)) * rng.uniform(2, 10) + 0.5, 0, 1)
        p = p.astype(np.float32)
        np.testing.assert_array_equal(f(p), _reference_components(p, 0.01, 0.005))

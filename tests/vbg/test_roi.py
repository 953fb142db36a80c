"""Person framing (vbg.roi): the box it picks, its hysteresis, pasting the crop back, the
whole-frame checks that find someone outside the box, and the FrameProcessor with it on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vbg.card import InputSpec, load_card
from vbg.pipeline import FrameProcessor, _person_crop, build_processor
from vbg.refine import Refiner
from vbg.roi import CROP_ASPECTS, PersonCrop, RoiConfig, crop_kernels_ready, grid_region
from vbg.segmenter import Segmenter, preprocess

FH, FW = 480, 854  # a 480p frame
GH, GW = 160, 288  # its model grid
SPEC = InputSpec(160, 288)
BLANK = np.zeros((FH, FW, 3), np.uint8)


def grid_person(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    """A model-grid probability with one person box (grid cells, end exclusive)."""
    p = np.zeros((GH, GW), np.float32)
    p[y0:y1, x0:x1] = 0.95
    return p


def started(cfg: RoiConfig | None = None) -> PersonCrop:
    roi = PersonCrop(SPEC, cfg)
    assert roi.start(BLANK) is None  # nothing seen yet: the whole frame
    return roi


def frame_box(y0: int, x0: int, y1: int, x1: int) -> tuple[float, float, float, float]:
    """A grid box in frame pixels (top, left, bottom, right)."""
    return y0 * FH / GH, x0 * FW / GW, y1 * FH / GH, x1 * FW / GW


def test_box_holds_the_person_with_a_margin_at_a_crop_shape_inside_the_frame():
    roi = started()
    roi.update(grid_person(40, 120, 150, 160))  # a standing person, a seventh of the width
    assert roi.box is not None and roi.aspect in CROP_ASPECTS
    t, left, h, w = roi.box
    y0, x0, y1, x1 = frame_box(40, 120, 150, 160)
    assert t >= 0 and left >= 0 and t + h <= FH and left + w <= FW
    assert t < y0 and left < x0 and t + h > y1 and left + w > x1  # a margin on every side
    # The box's own aspect is the shape's (to rounding), and much less than the frame's.
    assert w / h == pytest.approx(roi.aspect, rel=0.02)
    assert roi.aspect < 1.0
    # Grown toward the zoom cap (min_area of the frame) until it is as tall as the frame.
    assert h == FH and h * w > 1.5 * (y1 - y0) * (x1 - x0) * 1.25**2
    mh, mw = roi.shape_for()
    assert mh % 32 == 0 and mw % 32 == 0
    assert 0.8 < mh * mw / (GH * GW) < 1.2  # the card's pixel budget, at the crop's shape
    assert h % 4 == 0 and w % 4 == 0  # the crop's shrink starts with exact halvings


def test_a_person_filling_the_frame_or_nobody_means_the_whole_frame():
    roi = started()
    roi.update(grid_person(5, 20, 160, 270))
    assert roi.box is None  # the box would cover more than max_area of the frame
    roi.update(grid_person(40, 120, 150, 160))
    assert roi.box is not None
    roi.update(np.zeros((GH, GW), np.float32))
    assert roi.box is None


def test_box_stays_put_while_the_person_moves_a_little_and_follows_a_big_move():
    roi = started()
    roi.update(grid_person(40, 120, 150, 160))
    first = roi.box
    for dx in (1, 2, 3, 2, 0):  # sway: a steady network input
        roi.update(grid_person(40, 120 + dx, 150, 160 + dx))
        assert roi.box == first
    roi.update(grid_person(40, 200, 150, 240))  # walked to the right
    assert roi.box != first
    t, left, h, w = roi.box
    assert left < 200 * FW / GW and left + w > 240 * FW / GW


def test_box_shrinks_when_it_is_much_larger_than_needed():
    # Without the area bounds (the defaults keep every box within 45-60 % of the frame).
    roi = started(RoiConfig(min_area=0.0, max_area=0.85))
    roi.update(grid_person(20, 60, 150, 200))  # two people side by side
    wide = roi.box
    roi.update(grid_person(40, 120, 150, 160))  # one of them left
    assert roi.box is not None and wide is not None
    assert roi.box[2] * roi.box[3] < 0.6 * wide[2] * wide[3]


def test_paste_places_the_crop_in_its_grid_cells():
    roi = started()
    roi.update(grid_person(40, 120, 150, 160))
    y, x, h, w = grid_region(roi.box, (FH, FW), (GH, GW))
    crop = np.full(roi.shape_for(), 0.9, np.float32)
    out = roi.paste(crop, (GH, GW))
    assert out.shape == (GH, GW) and out.dtype == np.float32
    np.testing.assert_allclose(out[y : y + h, x : x + w], 0.9, atol=1e-6)
    outside = np.ones((GH, GW), bool)
    outside[y : y + h, x : x + w] = False
    assert outside.any() and not out[outside].any()
    # With the whole frame's own answer: kept outside the box, the crop's inside.
    full = np.full((GH, GW), 0.25, np.float32)
    out = roi.paste(crop, (GH, GW), full)
    assert np.all(out[outside] == 0.25)
    np.testing.assert_allclose(out[y : y + h, x : x + w], 0.9, atol=1e-6)


def test_grid_region_covers_at_least_one_cell_and_stays_in_the_grid():
    assert grid_region((0, 0, 1, 1), (FH, FW), (GH, GW)) == (0, 0, 1, 1)
    y, x, h, w = grid_region((FH - 3, FW - 3, 3, 3), (FH, FW), (GH, GW))
    assert y + h <= GH and x + w <= GW and h >= 1 and w >= 1


def test_whole_frame_check_every_n_frames_and_a_new_frame_size_forgets_the_box():
    roi = started(RoiConfig(check_every=4))
    roi.update(grid_person(40, 120, 150, 160))
    due = []
    for _ in range(8):
        roi.start(BLANK)
        due.append(roi.check_due())
        roi.update(grid_person(40, 120, 150, 160), checked=due[-1])
    assert due == [False, False, False, True, False, False, False, True]
    assert roi.start(np.zeros((720, 1280, 3), np.uint8)) is None  # another source
    assert not roi.check_due()


def test_a_scene_cut_forgets_the_box_and_a_moving_picture_does_not():
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (FH, FW, 3), np.uint8)
    shot = cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 25), None, 0, 255, cv2.NORM_MINMAX)
    roi = started()
    roi.start(shot)
    roi.update(grid_person(40, 120, 150, 160))
    box = roi.box
    assert box is not None
    # A pan of 12 px and a little more light: the same shot.
    panned = cv2.add(np.roll(shot, 12, axis=1), 10)
    assert roi.start(panned) == box
    roi.update(grid_person(40, 120, 150, 160))
    assert roi.start(255 - panned) is None  # another shot: the whole frame


def test_bad_roi_settings_and_fixed_size_models_are_refused():
    with pytest.raises(ValueError, match="check_every"):
        RoiConfig(check_every=0)
    with pytest.raises(ValueError, match="max_area"):
        RoiConfig(max_area=0.0)
    with pytest.raises(ValueError, match="min_area"):
        RoiConfig(min_area=0.9)
    with pytest.raises(ValueError, match="keep_growth"):
        RoiConfig(keep_growth=0.5)
    with pytest.raises(ValueError, match="one input size"):
        PersonCrop(InputSpec(160, 288, fit="stretch"))


class _NoEngine:
    name = "none"


def test_prepare_crop_is_the_crop_preprocessed_at_its_shape():
    card = type("Card", (), {"input": SPEC})()
    seg = Segmenter(card, _NoEngine())  # type: ignore[arg-type]
    frame = np.random.default_rng(0).integers(0, 256, (FH, FW, 3), np.uint8)
    seg.prepare(frame)
    small = seg.small.copy()
    box = (60, 300, 403, 227)  # top, left, height, width
    x = seg.prepare_crop(frame, box, (192, 96))
    crop = frame[60:463, 300:527]
    small_crop = cv2.resize(crop, (96, 192), interpolation=cv2.INTER_AREA)  # a box average
    want = preprocess(small_crop, InputSpec(192, 96, fit="stretch"))  # normalising only
    assert x.shape == (1, 3, 192, 96)
    # The plan halves, then averages; OpenCV averages in one step: rounding apart, equal.
    np.testing.assert_allclose(x, want, atol=2.01 / 255 / 0.224)
    assert np.abs(x - want).mean() < 0.5 / 255 / 0.224
    np.testing.assert_array_equal(seg.small, small)  # the guide is still the whole frame
    assert seg.prepare_crop(frame, box, (192, 96)) is x  # one buffer per shape
    # A frame that is a view (not contiguous) takes the OpenCV steps: the same input.
    wide = np.zeros((FH, FW + 10, 3), np.uint8)
    wide[:, :FW] = frame
    np.testing.assert_array_equal(seg.prepare_crop(wide[:, :FW], box, (192, 96)), want)
    assert seg._crop_bufs[(192, 96)][3].frame_hw == (403, 227)  # the plan of that box
    # Enlarging (a crop smaller than the model input): bilinear.
    x = seg.prepare_crop(frame, (10, 10, 100, 60), (160, 96))
    up = cv2.resize(frame[10:110, 10:70], (96, 160), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(x, preprocess(up, InputSpec(160, 96, fit="stretch")), atol=1e-4)


def test_a_prior_model_takes_no_crop(tiny_prior_card):
    card = load_card(tiny_prior_card)
    assert _person_crop(card, card) is None
    seg = Segmenter(card, _NoEngine())  # type: ignore[arg-type]
    frame = np.zeros((FH, FW, 3), np.uint8)
    seg.prepare(frame)
    with pytest.raises(ValueError, match="previous-frame"):
        seg.prepare_crop(frame, (0, 0, 100, 100), (160, 288))


class BrightEngine:
    """A 'network' that sees a person wherever the input is bright, and records the input
    shapes it was given."""

    name = "bright"

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def run(self, x: np.ndarray) -> np.ndarray:
        self.shapes.append(x.shape[2:])
        return np.where(x[:, :1].mean(axis=1, keepdims=True) > 0.5, 20.0, -20.0).astype(np.float32)

    def close(self) -> None:
        pass


def _follower(tiny_card, engine: BrightEngine, check_every: int = 5) -> FrameProcessor:
    card = load_card(tiny_card)
    return FrameProcessor(
        segmenter=Segmenter(card, engine),  # type: ignore[arg-type]
        smoother=None,
        refiner=Refiner(feather_px=0, edges="bilinear"),
        roi=PersonCrop(card.input, RoiConfig(check_every=check_every)),
    )


def _scene(people: list[tuple[int, int, int, int]]) -> np.ndarray:
    f = np.full((FH, FW, 3), 20, np.uint8)
    for y0, x0, y1, x1 in people:
        f[y0:y1, x0:x1] = 230
    return f


def _iou(alpha: np.ndarray, truth: np.ndarray) -> float:
    a = alpha > 127
    return float((a & truth).sum() / max(1, (a | truth).sum()))


def test_processor_follows_the_person_and_finds_one_who_walks_in(tiny_card):
    engine = BrightEngine()
    proc = _follower(tiny_card, engine, check_every=5)
    alone = [(100, 380, 420, 470)]
    frame = _scene(alone)
    truth = frame[..., 0] > 127
    for _ in range(3):
        alpha = proc.mask(frame)
    assert proc.roi is not None and proc.roi.box is not None
    crop_shape = proc.roi.shape_for()
    assert engine.shapes[-1] == crop_shape != engine.shapes[0]  # the crop, after frame 1
    assert _iou(alpha, truth) > 0.9
    # Someone walks in far from the box: found by the whole-frame check within
    # check_every frames, kept in the mask, and the next box holds both.
    both = [*alone, (150, 40, 400, 120)]
    frame = _scene(both)
    truth = frame[..., 0] > 127
    ious = []
    for _ in range(6):
        ious.append(_iou(proc.mask(frame), truth))
    assert ious[-1] > 0.9 and max(ious[:2]) < 0.8
    # The next box holds both, or (as here: more than max_area) the whole frame is used.
    if proc.roi.box is not None:
        t, left, h, w = proc.roi.box
        assert left < 40 and left + w > 470
    else:
        assert engine.shapes[-1] == engine.shapes[0]
    proc.reset()
    assert proc.roi.box is None


def test_build_processor_follow_on_the_tiny_model(tiny_card):
    proc = build_processor(tiny_card, engine="onnxruntime", background=None, follow=True)
    try:
        assert proc.roi is not None
        frame = _scene([(100, 380, 420, 470)])
        for _ in range(3):
            alpha = proc.mask(frame)
        assert alpha.shape == (FH, FW) and alpha.dtype == np.uint8
    finally:
        proc.close()
    proc = build_processor(tiny_card, engine="onnxruntime", background=None, follow=False)
    try:
        assert proc.roi is None
    finally:
        proc.close()


def test_openvino_compiles_a_new_size_in_the_background(tiny_card, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    from vbg.engines import create_engine

    monkeypatch.setenv("VBG_CACHE_DIR", str(tmp_path))
    eng = create_engine("openvino", load_card(tiny_card), threads=1)
    try:
        x = np.zeros((1, 3, 64, 96), np.float32)
        eng.run(x)
        assert eng.ready(64, 96)  # compiled by run()
        assert not eng.ready(96, 64)  # started, not done yet
        assert eng.ready(96, 64, wait=True)
        y = eng.run(np.zeros((1, 3, 96, 64), np.float32))
        assert y.shape == (1, 1, 96, 64)
        assert not eng.ready(128, 128)
        eng.run(np.zeros((1, 3, 128, 128), np.float32))  # waits for that compile, no second
        assert eng.ready(128, 128)
    finally:
        eng.close()
    # Each compiled size is in OpenVINO's model cache: the next start loads it.
    assert len(list((tmp_path / "openvino").glob("*.blob"))) == 3


def test_live_processor_uses_the_whole_frame_until_the_crop_size_is_compiled(tiny_card):
    class SlowToCompile(BrightEngine):
        """Ready for a size only on the third time it is asked (a background compile)."""

        def __init__(self) -> None:
            super().__init__()
            self.asked: dict[tuple[int, int], int] = {}

        def ready(self, h: int, w: int, wait: bool = False) -> bool:
            n = self.asked[(h, w)] = self.asked.get((h, w), 0) + 1
            return wait or n >= 3

    assert crop_kernels_ready(wait=True)  # the compiled crop passes: not what is tested here
    engine = SlowToCompile()
    proc = _follower(tiny_card, engine)
    proc.wait_for_compile = False
    frame = _scene([(100, 380, 420, 470)])
    for _ in range(4):
        proc.mask(frame)
    whole = engine.shapes[0]
    crop = proc.roi.shape_for()
    # frame 1: nothing seen; frames 2 and 3: the crop's size still compiling; then the crop
    assert engine.shapes == [whole, whole, whole, crop]
    engine = SlowToCompile()
    proc = _follower(tiny_card, engine)  # offline: waits, the crop from frame 2
    for _ in range(3):
        proc.mask(frame)
    assert engine.shapes == [whole, crop, crop]


def test_follow_flag_reaches_the_config(monkeypatch):
    import vbg.pipeline
    from vbg.cli import main

    seen = {}
    monkeypatch.setattr(vbg.pipeline, "run_config", lambda cfg: seen.setdefault("cfg", cfg))
    assert main(["run", "--no-follow", "--output", "preview"]) == 0
    assert seen["cfg"].follow is False
    seen.clear()
    assert main(["run", "--output", "preview"]) == 0
    assert seen["cfg"].follow is True

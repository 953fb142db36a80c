"""Frame -> person probability at model resolution.

`preprocess` is THE preprocessing of this project: the runtime uses it for every frame and
train/ uses it for validation and test images, so a model is evaluated on exactly what it
will see. Everything it does comes from the model card's InputSpec.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from functools import lru_cache

import cv2
import numpy as np

from vbg.card import InputSpec, ModelCard
from vbg.engines import Engine
from vbg.fused_input import InputPlan
from vbg.resize import AreaShrinker


def model_input_size(
    frame_h: int | tuple[int, int], frame_w: int | InputSpec, spec: InputSpec | None = None
) -> tuple[int, int]:
    """Model input (h, w) for a frame: model_input_size(h, w, spec) or ((h, w), spec).

    With fit="area" the aspect ratio is kept and each side is a multiple of spec.multiple:
    1280x720 -> 160x288 and a 600x800 portrait -> 256x192 with the default 160x288 card.
    """
    if spec is None:
        if not isinstance(frame_w, InputSpec):
            raise TypeError("model_input_size(h, w, spec) or model_input_size((h, w), spec)")
        spec = frame_w
        frame_h, frame_w = frame_h  # type: ignore[misc]
    return spec.size_for(int(frame_h), int(frame_w))


# --quality high with a --model card (or where no high-quality model is bundled) runs that
# model at a second, finer input size as well, and averages the two. On the test split
# (live path, INT8 on OpenVINO) the default model's own 160x288 gave IoU 0.9150, boundary
# IoU 0.461, dtSSD 8.21; 224x384 alone 0.9180 / 0.489 / 8.02 (better on video and
# full-body photos, worse on portraits: the network was trained at the smaller scale); the
# average of both 0.9201 / 0.481 / 7.91. The bundled hq model, trained at 224x384, is
# better at that size (vbg.pipeline._high_quality_card).
HIGH_QUALITY_SIDE = 1.4


def high_quality_spec(spec: InputSpec) -> InputSpec:
    """The finer of --quality high's two input sizes: each of the card's sides times
    HIGH_QUALITY_SIDE, rounded down to its multiple (160x288 -> 224x384). Only for cards
    that take any frame size (fit="area"); ValueError for a fixed-size model."""
    if spec.fit != "area":
        raise ValueError(f"a model with fit={spec.fit!r} takes one input size only")
    m = spec.multiple

    def side(n: int) -> int:
        return max(m, int(round(n * HIGH_QUALITY_SIDE, 6)) // m * m)

    return replace(spec, height=side(spec.height), width=side(spec.width))


# A prior model's previous frame is forgotten when the model-resolution picture changed by
# more than this many grey levels per value on average: a scene cut, a new source. Measured
# at 160x288 on the corpus's five DAVIS clips: consecutive frames differ by 12.6 (median) to
# 20.2 (a fast pan in rollerblade), the sample talking head by at most 3.9; the first
# frames of two different clips by 43.7 to 78.2.
CUT_MEAN_DIFF = 32.0


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise TypeError(f"frame must be a uint8 numpy array, not {getattr(frame, 'dtype', frame)}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be BGR with shape (H, W, 3), not {frame.shape}")


@lru_cache(maxsize=16)
def _norm_coeffs(spec: InputSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(x / scale - mean) / std == x * a - b, per model channel (cached: a spec is frozen)."""
    std = np.asarray(spec.std, dtype=np.float64)
    a = (1.0 / (spec.scale * std)).astype(np.float32)
    b = (np.asarray(spec.mean, dtype=np.float64) / std).astype(np.float32)
    return tuple(float(v) for v in a), tuple(float(v) for v in b)


def resize_for_model(
    frame_bgr: np.ndarray,
    spec: InputSpec,
    dst: np.ndarray | None = None,
    shrinker: AreaShrinker | None = None,
) -> np.ndarray:
    """The frame at model resolution, BGR uint8 (h, w, 3): area averaging when shrinking
    (vbg.resize: exact 2x halvings, then one step below 2x), bilinear when enlarging.

    Pass `dst` (h, w, 3) uint8 and an AreaShrinker to allocate nothing. The result is also
    the small image the guided filter takes its guide from (vbg.refine).
    """
    fh, fw = frame_bgr.shape[:2]
    h, w = model_input_size(fh, fw, spec)
    if (h, w) == (fh, fw):
        if dst is None:
            return frame_bgr
        np.copyto(dst, frame_bgr)
        return dst
    if h <= fh and w <= fw:
        return (shrinker or AreaShrinker())(frame_bgr, (w, h), dst)
    return cv2.resize(frame_bgr, (w, h), dst=dst, interpolation=cv2.INTER_LINEAR)


def normalize_into(
    small: np.ndarray,
    spec: InputSpec,
    out: np.ndarray,
    planes: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Model-resolution BGR uint8 -> `out`, NCHW float32 (1, 3, h, w): colour order per
    the card, / scale, (x - mean) / std. `planes`: three (h, w) uint8 scratch buffers."""
    a, b = _norm_coeffs(spec)
    planes = cv2.split(small, planes) if planes is not None else cv2.split(small)
    # Reading the source channel in the card's order is the same as cvtColor(BGR2RGB)
    # without the extra image; each plane is written straight into the NCHW buffer, in
    # one pass: x * a - b.
    src_channel = (2, 1, 0) if spec.color_order == "RGB" else (0, 1, 2)
    for c, s in enumerate(src_channel):
        cv2.addWeighted(planes[s], a[c], planes[s], 0.0, -b[c], dst=out[0, c], dtype=cv2.CV_32F)
    return out


def preprocess(frame_bgr: np.ndarray, spec: InputSpec, out: np.ndarray | None = None) -> np.ndarray:
    """BGR uint8 HxWx3 -> normalised NCHW float32 (1, 3, h, w) for the model.

    resize_for_model (area averaging when shrinking, which averages instead of aliasing;
    bilinear when enlarging) -> normalize_into (colour order per the card, / scale,
    (x - mean) / std, NCHW). Pass `out` (the right shape, float32) to reuse a buffer.
    """
    _check_frame(frame_bgr)
    h, w = model_input_size(*frame_bgr.shape[:2], spec)
    if out is None:
        out = np.empty((1, 3, h, w), dtype=np.float32)
    elif out.shape != (1, 3, h, w) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 (1, 3, {h}, {w}), not {out.dtype} {out.shape}")
    return normalize_into(resize_for_model(frame_bgr, spec), spec, out)


def with_unknown_prior(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A preprocessed image for a prior model (spec.prior): the fourth channel added as
    "no previous frame" (0); unchanged for a stateless model."""
    if not spec.prior:
        return x
    return np.concatenate([x, np.zeros_like(x[:, :1])], axis=1)


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """In-place logistic function; tanh form, so large |x| never overflows."""
    np.multiply(x, 0.5, out=x)
    np.tanh(x, out=x)
    np.multiply(x, 0.5, out=x)
    np.add(x, 0.5, out=x)
    return x


class Stateless:
    """The state calls FrameProcessor makes on every segmenter, as no-ops: for stand-ins
    of a model without a previous-frame input (benchmarks' peers, cached outputs)."""

    def remember(self, prob: np.ndarray) -> None:
        pass

    def reset(self) -> None:
        pass


class Segmenter:
    """frame -> person probability float32 (h, w) in [0, 1] at model resolution.

    The normalised input tensor and the model-resolution image are preallocated per frame
    size, so `prepare` allocates nothing; where vbg.fused_input covers the shrink (a
    contiguous frame shrunk by halvings and a bilinear step: every common camera size) the
    two are made by its compiled passes, bit-identical to the OpenCV steps.
    `small` is the latest frame at model resolution
    (BGR uint8 (h, w, 3)): the refiner's guided filter takes its small guide from it
    instead of shrinking the full frame again. `timer` (a StageTimer) times "preprocess"
    and "inference" separately when given.

    A prior model (card.input.prior) takes its own previous probability as a fourth input
    channel: `remember(prob)` stores it (as 2p - 1) in the reused input buffer's last
    plane, which `prepare` leaves alone, so the next frame sees it. `reset()` forgets it
    (0 = no previous frame), and so does a wholesale change of the picture (a scene cut
    the caller did not report: the mean difference of the model-resolution images).
    """

    def __init__(self, card: ModelCard, engine: Engine) -> None:
        self.card = card
        self.engine = engine
        self._buf: np.ndarray | None = None
        self.small: np.ndarray | None = None
        self._planes: list[np.ndarray] = []
        self._shrinker = AreaShrinker()
        self._plan: InputPlan | None = None
        self._plan_hw: tuple[int, ...] | None = None
        self._prev_small: np.ndarray | None = None  # a prior model's last picture (cuts)
        # vbg.roi crops, per model input shape (h, w): its small image, input tensor and
        # planes, and the compiled plan for the last box size (or None)
        self._crop_bufs: dict[tuple[int, int], list] = {}

    @property
    def stateful(self) -> bool:
        """Whether the model reads its previous output (a prior model)."""
        return self.card.input.prior

    def reset(self) -> None:
        """Forget the previous frame: the next one is segmented as a still."""
        if self._buf is not None and self.stateful:
            self._buf[0, 3].fill(0.0)
        self._prev_small = None

    def remember(self, prob: np.ndarray) -> None:
        """A prior model's probability for this frame (model resolution), fed to the
        next one; a no-op for a stateless model."""
        if not self.stateful or self._buf is None:
            return
        plane = self._buf[0, 3]
        if prob.shape != plane.shape:
            raise ValueError(f"remember() takes a {plane.shape} probability, not {prob.shape}")
        np.multiply(prob, 2.0, out=plane)
        np.subtract(plane, 1.0, out=plane)

    def input_size(self, frame_h: int, frame_w: int) -> tuple[int, int]:
        return model_input_size(frame_h, frame_w, self.card.input)

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The engine input for this frame, in a buffer reused for frames of the same size."""
        _check_frame(frame_bgr)
        h, w = self.input_size(*frame_bgr.shape[:2])
        spec = self.card.input
        if self._buf is None or self._buf.shape[2:] != (h, w):
            # zeros: a prior model's fourth plane starts as "no previous frame"
            self._buf = np.zeros((1, spec.channels, h, w), dtype=np.float32)
            self.small = np.empty((h, w, 3), np.uint8)
            self._planes = [np.empty((h, w), np.uint8) for _ in range(3)]
            self._plan_hw = None
            self._prev_small = None
        if frame_bgr.shape[:2] != self._plan_hw:  # a plan per frame size, None if uncovered
            self._plan_hw = frame_bgr.shape[:2]
            self._plan = self._make_plan(self._plan_hw, (h, w))
            self._prev_small = None  # another frame size: another source, no prior
        # Both fill the image planes 0-2 only: a prior model's plane 3 is remember()'s.
        if self._plan is not None and self._plan.fits(frame_bgr):
            self._plan(frame_bgr, self.small, self._buf)
        else:
            resize_for_model(frame_bgr, spec, dst=self.small, shrinker=self._shrinker)
            normalize_into(self.small, spec, self._buf, self._planes)
        if self.stateful:
            self._forget_on_cut()
        return self._buf

    def prepare_crop(
        self, frame_bgr: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int]
    ) -> np.ndarray:
        """The engine input for the part `box` (top, left, height, width) of the frame,
        resized to `shape` (h, w): vbg.roi's person crop. Call after `prepare(frame)`,
        which leaves `small` (the whole frame: the refiner's guide) as it was. A stateless
        model only: a prior model's previous frame lives on the whole frame's grid."""
        if self.stateful:
            raise ValueError("a model with a previous-frame input cannot run on a crop")
        spec = self.card.input
        bufs = self._crop_bufs.get(shape)
        if bufs is None:  # once per crop shape (vbg.roi has a handful)
            h, w = shape
            planes = [np.empty((h, w), np.uint8) for _ in range(3)]
            x = np.empty((1, 3, h, w), np.float32)
            bufs = [np.empty((h, w, 3), np.uint8), x, planes, None]
            self._crop_bufs[shape] = bufs
        small, x, planes, plan = bufs
        t, left, bh, bw = box
        if frame_bgr.dtype == np.uint8 and frame_bgr.flags.c_contiguous:
            if plan is None or plan.frame_hw != (bh, bw):  # a new box size (rare: hysteresis)
                plan = bufs[3] = self._make_plan((bh, bw), shape, area=True)
            if plan is not None:  # halvings and a box average, compiled, read in place
                # (0.65 ms for a 720p person's crop on 2 cores)
                plan.crop(frame_bgr, t, left, small, x)
                return x
        # A box average from OpenCV in one step (2.5 ms for a 720p crop: its INTER_AREA
        # has a fast path for exact 2x only), close to the plan's (which halves first:
        # under a grey level on average). Not a bilinear last step as the whole frame
        # takes (see vbg.fused_input.area_normalize).
        crop = frame_bgr[t : t + bh, left : left + bw]
        shrink = shape[0] <= bh and shape[1] <= bw
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        cv2.resize(crop, shape[::-1], dst=small, interpolation=interp)
        return normalize_into(small, spec, x, planes)

    def _forget_on_cut(self) -> None:
        """Zeroes the prior when the picture changed wholesale since the last frame."""
        small = self.small
        assert small is not None and self._buf is not None
        prev = self._prev_small
        if prev is None:
            self._prev_small = small.copy()  # once per frame size
            self._buf[0, 3].fill(0.0)
            return
        if cv2.norm(small, prev, cv2.NORM_L1) > CUT_MEAN_DIFF * small.size:
            self._buf[0, 3].fill(0.0)
        np.copyto(prev, small)

    def _make_plan(
        self, frame_hw: tuple[int, int], model_hw: tuple[int, int], area: bool = False
    ) -> InputPlan | None:
        if not InputPlan.covers(frame_hw, model_hw, area):
            return None
        spec = self.card.input
        rgb = spec.color_order == "RGB"
        return InputPlan(frame_hw, model_hw, rgb, *_norm_coeffs(spec), area=area)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Engine output -> probability (h, w) float32 (a new array)."""
        y = self.engine.run(x)
        if y.ndim != 4 or y.shape[0] != 1 or y.shape[1] < 1:
            raise ValueError(
                f"engine {self.engine.name} returned shape {y.shape}, expected (1, 1, h, w)"
            )
        # A copy (model resolution, small): the engine may reuse its output buffer.
        prob = np.array(y[0, 0], dtype=np.float32, copy=True)
        h, w = x.shape[2:]
        if prob.shape != (h, w):
            # A model that predicts at a stride: bring it to the input grid.
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.card.output.kind == "logits":
            sigmoid_(prob)
        else:
            np.clip(prob, 0.0, 1.0, out=prob)
        return prob

    def __call__(self, frame_bgr: np.ndarray, timer=None) -> np.ndarray:
        with timer.stage("preprocess") if timer is not None else nullcontext():
            x = self.prepare(frame_bgr)
        with timer.stage("inference") if timer is not None else nullcontext():
            return self.infer(x)

"""Smoothing over time, at model resolution.

A per-frame segmenter flickers at the edges and on small false positives. Two cheap fixes:
a moving average of the probability map (damps frame-to-frame jitter) and a morphological
open/close (removes isolated specks, fills pinholes).

The average is adaptive by default (mode="adaptive"): each pixel blends the new frame in
with a weight that grows with how much it disagrees with the state, from `still_weight`
(no real change: jitter, heavily damped) up to 1 at a difference of `move_diff` (a limb
moved: followed at once, no ghost trailing behind it). A plain EMA (mode="ema") must pick
one weight for both and either shimmers on still edges or smears moving ones. On top,
hysteresis: a pixel that was person (>= 0.5) last frame is shifted up by up to
`hysteresis` near 0.5 and one that was background down, so a probability hovering around
the threshold does not flip the pixel every frame; a pixel changes side only when its
probability crosses 0.5 -/+ 2/3 * hysteresis. The state is explicit
(attributes you can read, reset() to clear) so a scene cut, a seek or a camera restart
never blends two unrelated pictures.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vbg import fused

TEMPORAL_MODES = ("adaptive", "ema")


@dataclass(frozen=True)
class TemporalConfig:
    mode: str = "adaptive"  # adaptive | ema (see the module docstring)
    ema: float = 0.5  # mode=ema: weight of the NEW frame: 1.0 = no smoothing
    still_weight: float = 0.25  # adaptive: weight of the new frame where it agrees
    move_diff: float = 0.5  # adaptive: |new - state| at and above which the new frame wins
    hysteresis: float = 0.1  # shift toward the pixel's previous side near 0.5; 0 = off
    # adaptive: warp the state along the optical flow (DIS) before blending. Off: on the
    # five DAVIS videos it moved IoU 0.8701 -> 0.8709 and dtSSD 8.35 -> 8.36, for the cost
    # of a frame shrink and a flow field per frame.
    motion: bool = False
    open_px: int = 1  # radius of the opening (removes specks up to ~2*open_px px); 0 = off
    close_px: int = 1  # radius of the closing (fills holes up to ~2*close_px px); 0 = off.
    # 1, not 2: on the validation split a radius of 2 closed the gaps between legs and arms
    # of full-body photos (IoU 0.918 vs 0.921) and helped nothing else.
    cut_threshold: float = 0.35  # mean |prob - state| above which the scene is new: reset

    def __post_init__(self) -> None:
        if self.mode not in TEMPORAL_MODES:
            raise ValueError(f"mode must be one of {', '.join(TEMPORAL_MODES)}, not {self.mode!r}")
        if not 0.0 < self.still_weight <= 1.0:
            raise ValueError(f"still_weight must be in (0, 1], not {self.still_weight}")
        if self.move_diff <= 0:
            raise ValueError(f"move_diff must be > 0, not {self.move_diff}")
        if not 0.0 <= self.hysteresis < 0.5:
            raise ValueError(f"hysteresis must be in [0, 0.5), not {self.hysteresis}")
        if not 0.0 < self.ema <= 1.0:
            raise ValueError(f"ema must be in (0, 1], not {self.ema}")
        if self.open_px < 0 or self.close_px < 0:
            raise ValueError("open_px and close_px must be >= 0")
        if self.cut_threshold <= 0:
            raise ValueError("cut_threshold must be > 0")


def ellipse_kernel(radius: int) -> np.ndarray | None:
    """Elliptical structuring element of size 2*radius+1 (a disc treats edges evenly in every
    direction, where a square kernel squares off a round head)."""
    if radius <= 0:
        return None
    k = 2 * radius + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


class TemporalSmoother:
    """prob (h, w) float32 -> smoothed prob, same shape.

    state: the running average of the raw probabilities (None before the first frame or
    after reset); side: uint8, 1 where the previous output was person (for hysteresis).
    Hysteresis and morphology are applied to the output only, so they never compound over
    frames. Work buffers are allocated once per map size.
    """

    def __init__(self, cfg: TemporalConfig | None = None) -> None:
        self.cfg = cfg or TemporalConfig()
        self._open = ellipse_kernel(self.cfg.open_px)
        self._close = ellipse_kernel(self.cfg.close_px)
        self.state: np.ndarray | None = None
        self.side: np.ndarray | None = None
        self._bufs: dict[str, np.ndarray] = {}
        self._gray: np.ndarray | None = None  # previous frame, grey at model resolution
        self._dis = None  # cv2 DIS optical flow, made on first use
        self._grid: np.ndarray | None = None
        self.frames = 0  # frames since the last reset
        self.cuts = 0  # scene cuts detected so far
        self.last_change = 0.0  # mean |prob - state| of the latest frame

    def reset(self) -> None:
        """Forget the past: the next frame starts a new EMA."""
        self.state = None
        self.side = None
        self._gray = None
        self.frames = 0
        self.last_change = 0.0

    def _buf(self, name: str, like: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        b = self._bufs.get(name)
        if b is None or b.shape != like.shape or b.dtype != dtype:
            b = self._bufs[name] = np.empty(like.shape, dtype)
        return b

    def _warp_state(self, frame_bgr: np.ndarray) -> None:
        # Dense optical flow at model resolution (DIS, ultrafast preset: ~1 ms at 160x288)
        # from this frame back to the previous one; the state is resampled along it, so a
        # moving edge is compared with where it was, not with the background it uncovered.
        h, w = self.state.shape
        small = cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        prev, self._gray = self._gray, gray
        if prev is None or prev.shape != gray.shape:
            return
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        flow = self._dis.calc(gray, prev, None)
        if self._grid is None or self._grid.shape[:2] != (h, w):
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = np.dstack([gx, gy])
        flow += self._grid
        cv2.remap(
            self.state,
            flow,
            None,
            cv2.INTER_LINEAR,
            dst=self._buf("warp", self.state),
            borderMode=cv2.BORDER_REPLICATE,
        )
        self.state, self._bufs["warp"] = self._bufs["warp"], self.state

    def _blend_adaptive(self, prob: np.ndarray) -> None:
        # w = still + (1 - still) * min(|p - s| / move_diff, 1);  s += w * (p - s)
        c = self.cfg
        fused.adaptive_blend(prob, self.state, c.still_weight, c.move_diff)

    def _hysteresis(self, out: np.ndarray) -> None:
        # out += h * (2 * side - 1) * max(0, 1 - |out - 0.5| / (2h)): a tent around 0.5, so
        # the map stays continuous and monotonic (slope >= 1/2) and far values are untouched.
        has_side = self.side is not None and self.side.shape == out.shape
        if not has_side:
            self.side = np.empty(out.shape, np.uint8)
        fused.hysteresis(out, self.side, self.cfg.hysteresis, has_side)

    def _update(self, prob: np.ndarray, frame_bgr: np.ndarray | None) -> None:
        motion = self.cfg.motion and self.cfg.mode == "adaptive" and frame_bgr is not None
        if self.state is None or self.state.shape != prob.shape:
            self.state = prob.copy()
            self.side = None
            self._gray = None
            if motion:
                self._warp_state(frame_bgr)
            self.frames = 1
            self.last_change = 0.0
            return
        if motion:
            self._warp_state(frame_bgr)
        # Mean absolute change: a new scene (or a person appearing/leaving at once) moves
        # a large part of the map, ordinary motion only its edges.
        self.last_change = float(cv2.norm(prob, self.state, cv2.NORM_L1)) / prob.size
        if self.last_change > self.cfg.cut_threshold:
            self.cuts += 1
            self.side = None
            self.state[...] = prob
            self.frames = 1
            return
        if self.cfg.mode == "adaptive":
            self._blend_adaptive(prob)
        else:  # state = (1 - ema) * state + ema * prob
            cv2.accumulateWeighted(prob, self.state, self.cfg.ema)
        self.frames += 1

    def __call__(self, prob: np.ndarray, frame_bgr: np.ndarray | None = None) -> np.ndarray:
        """frame_bgr: the frame `prob` was computed from (any size), for motion
        compensation; without it the state is blended in place."""
        if not isinstance(prob, np.ndarray) or prob.ndim != 2:
            raise ValueError(f"prob must be a 2-D array, not {getattr(prob, 'shape', prob)}")
        if prob.dtype != np.float32:
            prob = prob.astype(np.float32)
        self._update(prob, frame_bgr)
        out = self.state.copy()
        if self.cfg.hysteresis > 0 and self.cfg.mode == "adaptive":
            self._hysteresis(out)
        if self._open is not None:
            cv2.morphologyEx(out, cv2.MORPH_OPEN, self._open, dst=out)
        if self._close is not None:
            cv2.morphologyEx(out, cv2.MORPH_CLOSE, self._close, dst=out)
        return out

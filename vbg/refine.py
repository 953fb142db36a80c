"""From the model-resolution probability to an alpha matte at frame resolution.

prob_to_frame is the plain bilinear upsampling that `train evaluate` scores a model with;
Refiner is the runtime path (`vbg process`, `vbg run`, and `vbg eval`, which measures the
runtime): edge-aware upsampling with a guided filter (or bilinear), optional feathering, and
optional DenseCRF on keyframes.
"""

from __future__ import annotations

import cv2
import numpy as np

from vbg import VbgError, fused
from vbg.cleanup import ComponentFilter, MatteBounds
from vbg.guided import GuidedUpsampler
from vbg.temporal import ellipse_kernel

EDGE_MODES = ("guided", "bilinear")

# DenseCRF kernels, in model-resolution pixels (the CRF runs there, see Refiner).
CRF_GAUSSIAN_SXY = 3  # smoothness: neighbours within ~3 px agree
CRF_GAUSSIAN_COMPAT = 3
CRF_BILATERAL_SXY = 20  # appearance: similar colours within ~20 px agree
CRF_BILATERAL_SRGB = 13
CRF_BILATERAL_COMPAT = 8
_CRF_EPS = 1e-5


def prob_to_frame(
    prob: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None
) -> np.ndarray:
    """Bilinear upsample of a probability map (h, w) to frame size (H, W), float32.

    Threshold the result at 0.5 for metrics.
    """
    if prob.ndim != 2:
        raise ValueError(f"prob must be 2-D, not {prob.shape}")
    H, W = int(size[0]), int(size[1])
    src = prob if prob.dtype == np.float32 else prob.astype(np.float32)
    if src.shape == (H, W):
        if out is None:
            return src.copy()
        out[...] = src
        return out
    return cv2.resize(src, (W, H), dst=out, interpolation=cv2.INTER_LINEAR)


def _import_densecrf():
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as e:
        raise VbgError(
            "DenseCRF refinement needs pydensecrf: pip install 'vbg[crf]' (or set crf_every=0)"
        ) from e
    return dcrf


def densecrf_prob(prob: np.ndarray, image_bgr: np.ndarray, iters: int = 5) -> np.ndarray:
    """Two-label DenseCRF (background/person) over `prob`, with `image_bgr` of the same
    size as the appearance term; returns the refined person probability (float32)."""
    dcrf = _import_densecrf()
    h, w = prob.shape
    if image_bgr.shape[:2] != (h, w):
        raise ValueError(f"image {image_bgr.shape[:2]} and prob {prob.shape} sizes differ")
    p = np.clip(prob, _CRF_EPS, 1.0 - _CRF_EPS).reshape(1, -1)
    unary = np.empty((2, h * w), dtype=np.float32)
    unary[0] = -np.log1p(-p)  # label 0: background
    unary[1] = -np.log(p)  # label 1: person
    crf = dcrf.DenseCRF2D(w, h, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=CRF_GAUSSIAN_SXY, compat=CRF_GAUSSIAN_COMPAT)
    crf.addPairwiseBilateral(
        sxy=CRF_BILATERAL_SXY,
        srgb=CRF_BILATERAL_SRGB,
        rgbim=np.ascontiguousarray(image_bgr),  # colour distances: channel order is irrelevant
        compat=CRF_BILATERAL_COMPAT,
    )
    q = np.asarray(crf.inference(int(iters)), dtype=np.float32)
    return q[1].reshape(h, w).copy()


class Refiner:
    """prob (h, w) float32 at model resolution + the frame -> alpha uint8 (H, W).

    1. Upsample to the frame size: edges="guided" (default) with a fast guided filter that
       puts the outline on the image's own edges (vbg.guided); edges="bilinear" plainly
       (in uint8: a quarter of the float traffic, and the matte is uint8 anyway).
    2. Feather with a small Gaussian (kernel 2*feather_px+1) if asked: the guided matte is
       already soft where the image is, so the default is no feathering.
    3. Optional DenseCRF (crf_every=N > 0; vbg[crf]) every N-th frame, a "keyframe". It runs
       at model resolution with the frame shrunk to match: at full resolution one pass costs
       hundreds of ms, there a few ms to tens of ms.

    Between keyframes: applying the CRF only on keyframes would make the edge jump every N
    frames (a visible pulse), and re-running it is what we are trying to avoid. Instead the
    keyframe's correction (crf - prob) is kept and added to later frames, weighted per pixel
    by how little the mask has changed there since the keyframe: weight 1 where the
    probability is unchanged, falling linearly to 0 where it moved by `crf_tolerance` or
    more. Static edges keep the CRF's snap; where the person moved, the stale correction is
    dropped rather than drawn as a ghost.

    The returned array is a buffer reused by the next call (copy it to keep it).
    """

    def __init__(
        self,
        feather_px: int = 0,
        crf_every: int = 0,
        *,
        edges: str = "guided",
        crf_iters: int = 5,
        crf_tolerance: float = 0.25,
        bounds: bool = True,
        min_area: float = 0.01,
        max_hole: float = 0.005,
        erode_px: int = 0,
        compiled: bool = True,
    ) -> None:
        if feather_px < 0:
            raise ValueError("feather_px must be >= 0")
        if crf_every < 0:
            raise ValueError("crf_every must be >= 0 (0 = off)")
        if edges not in EDGE_MODES:
            raise ValueError(f"edges must be one of {', '.join(EDGE_MODES)}, not {edges!r}")
        if crf_tolerance <= 0:
            raise ValueError("crf_tolerance must be > 0")
        if crf_every:
            _import_densecrf()  # fail now, with the extra's name, not on the first frame
        if erode_px < 0:
            raise ValueError("erode_px must be >= 0")
        # vbg.cleanup: ghosts (bounds), specks/holes (sizes relative to the frame), and
        # erode-then-feather (erode_px before the Gaussian of feather_px).
        self._bounds = MatteBounds() if bounds and edges == "guided" else None
        self._components = ComponentFilter(min_area, max_hole) if min_area or max_hole else None
        self._erode = ellipse_kernel(erode_px)
        self.feather_px = feather_px
        self.edges = edges
        self._guided = GuidedUpsampler() if edges == "guided" else None
        self.crf_every = crf_every
        self.crf_iters = crf_iters
        self.crf_tolerance = crf_tolerance
        self._ksize = 2 * feather_px + 1
        # The guided apply and the bounds as one compiled pass over the frame (vbg.fused);
        # compiled=False keeps the OpenCV passes (the reference the tests compare it with).
        self.compiled = compiled and self._guided is not None and self._bounds is not None
        self._taps: fused.Taps | None = None
        self._matte: np.ndarray | None = None  # the compiled path's, rows padded (fused)
        # Reused buffers, made by _buffers() for the sizes in use; which ones exist depends
        # on the edge mode (guided needs the grey guide, bilinear the uint8 upsampling).
        self._small: np.ndarray | None = None  # bilinear: uint8 at model resolution
        self._up: np.ndarray | None = None  # bilinear: uint8 at frame resolution
        self._gray: np.ndarray | None = None  # guided: the frame in grey
        self._gray_small: np.ndarray | None = None  # guided: the small guide in grey
        self._alpha: np.ndarray | None = None  # feathered output
        self.frames = 0
        self.keyframes = 0
        self._key_prob: np.ndarray | None = None
        self._crf_delta: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the CRF keyframe: the next frame is a keyframe."""
        self.frames = 0
        self._key_prob = None
        self._crf_delta = None

    def _buffers(self, small_hw: tuple[int, int], frame_hw: tuple[int, int]) -> None:
        def fresh(buf: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
            return buf if buf is not None and buf.shape == shape else np.empty(shape, np.uint8)

        if self._guided is not None:
            self._gray = fresh(self._gray, frame_hw)
            self._gray_small = fresh(self._gray_small, small_hw)
        else:
            self._small = fresh(self._small, small_hw)
            self._up = fresh(self._up, frame_hw)
        if self.feather_px:
            self._alpha = fresh(self._alpha, frame_hw)

    def _apply_crf(self, prob: np.ndarray, frame_bgr: np.ndarray) -> np.ndarray:
        h, w = prob.shape
        keyframe = (
            self._key_prob is None
            or self._key_prob.shape != prob.shape
            or self.frames % self.crf_every == 0
        )
        if keyframe:
            small = cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_AREA)
            refined = densecrf_prob(prob, small, self.crf_iters)
            self._key_prob = prob.copy()
            self._crf_delta = refined - prob
            self.keyframes += 1
            return refined
        change = np.abs(prob - self._key_prob)
        weight = np.clip(1.0 - change / self.crf_tolerance, 0.0, 1.0)
        out = prob + self._crf_delta * weight
        return np.clip(out, 0.0, 1.0, out=out)

    def __call__(
        self,
        prob_small: np.ndarray,
        frame_bgr: np.ndarray,
        small_bgr: np.ndarray | None = None,
    ) -> np.ndarray:
        """alpha uint8 (H, W) for this frame.

        small_bgr: optional, the same frame at the model's resolution (BGR uint8, the shape
        of prob_small): the segmenter's preprocessed image (Segmenter.small). The guided
        filter takes its small guide from it instead of shrinking the full frame again.
        """
        if prob_small.ndim != 2:
            raise ValueError(f"prob must be 2-D, not {prob_small.shape}")
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3), not {frame_bgr.shape}")
        prob = prob_small if prob_small.dtype == np.float32 else prob_small.astype(np.float32)
        if self.crf_every:
            prob = self._apply_crf(prob, frame_bgr)
        if self._components is not None:
            prob = self._components(prob)
        self.frames += 1

        H, W = frame_bgr.shape[:2]
        self._buffers(prob.shape, (H, W))
        if self.compiled and fused.frame_fits(frame_bgr):
            up = self._fused_matte(prob, frame_bgr, small_bgr)
        else:
            up = self._upsample(prob, frame_bgr, small_bgr)
            if self._bounds is not None:  # made only for edges="guided"
                up = self._bounds(prob, up)
        # Per-pixel stages on the frame-size matte, in place; the feathering is the last.
        if self._erode is not None:
            cv2.erode(up, self._erode, dst=up)
        if self.feather_px == 0:
            return up
        cv2.GaussianBlur(up, (self._ksize, self._ksize), 0, dst=self._alpha)
        return self._alpha

    def _fused_matte(
        self, prob: np.ndarray, frame_bgr: np.ndarray, small_bgr: np.ndarray | None
    ) -> np.ndarray:
        """Guided upsampling + bounds in one pass (vbg.fused): the coefficients and the
        bounds at model resolution, then only the outline's band computed at full size."""
        assert self._guided is not None and self._bounds is not None
        h, w = prob.shape
        H, W = frame_bgr.shape[:2]
        if small_bgr is not None and small_bgr.shape[:2] == (h, w):
            guide_small = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2GRAY, dst=self._gray_small)
        else:  # no preprocessed image: shrink the frame here (colour first, as it is small)
            small = cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_AREA)
            guide_small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY, dst=self._gray_small)
        lo, hi = self._bounds.small_bounds(prob)
        if self._taps is None or not self._taps.fits((h, w), (H, W)):
            self._taps = fused.Taps((h, w), (H, W))
            self._scratch = fused.Scratch((h, w), W)
            self._a_map = np.zeros((h, w), np.float32)
            self._b_map = np.zeros((h, w), np.float32)
            self._guided.reserve((h, w))
        sc, taps = self._scratch, self._taps.all
        r0, r1, c0, c1 = fused.matte_classes(lo, hi, self._bounds.lut_ends, taps, sc.table, sc.run)
        if r1 > r0:
            # The guided filter's coefficients over the band's box only, grown by twice
            # its radius: inside that margin the two box filters see exactly the cells
            # they would over the whole map (where the box meets the map's edge, the
            # reflection is the map's own).
            m = 2 * self._guided.radius
            box = np.s_[max(r0 - m, 0) : min(r1 + m, h), max(c0 - m, 0) : min(c1 + m, w)]
            self._guided.coefficients(
                prob[box], guide_small[box], out=(self._a_map[box], self._b_map[box])
            )
        if self._matte is None or self._matte.shape != (H, fused.padded_width(W)):
            # Rows of whole groups of pixels: sure groups are written as uint64 words.
            self._matte = np.empty((H, fused.padded_width(W)), np.uint8)
        alpha = self._matte
        fused.matte_rows(
            frame_bgr, self._a_map, self._b_map, lo, hi, self._bounds.lut, taps,
            alpha, alpha.view(np.uint64), sc.table, sc.rows,
        )  # fmt: skip
        return alpha if alpha.shape[1] == W else alpha[:, :W]

    def _upsample(
        self, prob: np.ndarray, frame_bgr: np.ndarray, small_bgr: np.ndarray | None
    ) -> np.ndarray:
        """Model-resolution probability -> uint8 matte at frame resolution (a buffer)."""
        H, W = frame_bgr.shape[:2]
        if self._guided is not None:
            cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY, dst=self._gray)
            guide_small = None
            if small_bgr is not None and small_bgr.shape[:2] == prob.shape:
                guide_small = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2GRAY, dst=self._gray_small)
            return self._guided(prob, self._gray, guide_small)
        # |prob * 255| rounded and saturated to uint8, in one pass.
        cv2.convertScaleAbs(prob, dst=self._small, alpha=255.0)
        if self._small.shape == (H, W):
            np.copyto(self._up, self._small)
        else:
            cv2.resize(self._small, (W, H), dst=self._up, interpolation=cv2.INTER_LINEAR)
        return self._up

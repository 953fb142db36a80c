"""The whole frame on one torch device (a CUDA GPU; torch's CPU device in the tests).

On a GPU the network is a small part of a frame's cost once the frame itself stays on the
host: resizing, smoothing, upsampling and compositing a 1080p frame in NumPy/OpenCV costs
more CPU time than the network costs GPU time. Here a frame is uploaded once (uint8), and
everything up to the composited uint8 result runs as tensor operations on the device:

    upload -> area shrink + normalise -> network (+ mirrored, for TTA) -> sigmoid ->
    temporal smoothing -> [speck/hole filter: host, at model resolution] -> guided
    upsampling -> bounds -> [edge decontamination] -> composite (image, colour or
    halo-free blur background; light wrap) -> download

Each step is the same computation as the NumPy/OpenCV path's (vbg.resize, vbg.segmenter,
vbg.temporal, vbg.cleanup, vbg.guided, vbg.edges, vbg.compose, vbg.blur, vbg.lightwrap), in
torch: the tests run both on the same frames on torch's CPU device and compare them, and
`benchmarks/gpu.py` does the same on a GPU with real frames. Differences are rounding
(OpenCV's fixed-point resizes): masks agree to IoU >= 0.99, composites to a few grey levels.

Frames may come in batches (N, H, W, 3): the network runs on the batch at once, the
temporal filter walks it in order (it is a recurrence), the rest is batched.

Connected components (vbg.cleanup.ComponentFilter) have no cheap tensor form; they run on
the host on the model-resolution map (46 K values at 720p), one small transfer each way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from vbg import VbgError

if TYPE_CHECKING:
    import torch

    from vbg.card import InputSpec
    from vbg.temporal import TemporalConfig

# ------------------------------------------------------------------ building blocks


def _torch():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:  # pragma: no cover - the callers check before
        raise VbgError("the device path needs torch: pip install 'vbg[torch]'") from e
    return torch, F


def to_planar(frames_u8: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 (values 0..255), on the same device."""
    return frames_u8.permute(0, 3, 1, 2).float()


def to_interleaved_u8(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float (0..255, already rounded) -> (N, H, W, 3) uint8, contiguous."""
    return x.clamp(0, 255).to(dtype=_torch()[0].uint8).permute(0, 2, 3, 1).contiguous()


def gray(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) BGR 0..255 -> (N, 1, H, W) grey 0..255, exactly as OpenCV 5's uint8
    BGR2GRAY: fixed-point weights 3735, 19235, 9798 / 2^15, rounded (found by matching
    it on every pixel of random images; the tests check it still does)."""
    torch, _ = _torch()
    xi = x.to(torch.int32)
    g = xi[:, 0:1] * 3735 + xi[:, 1:2] * 19235 + xi[:, 2:3] * 9798 + (1 << 14)
    return torch.bitwise_right_shift(g, 15).float()


def area_shrink(x: torch.Tensor, hw: tuple[int, int], round_steps: bool = True) -> torch.Tensor:
    """vbg.resize.AreaShrinker on planar images: exact 2x2 box halvings while another 2x
    remains on both sides (even sides), then bilinear below 2x or an area step. With
    round_steps each step is rounded as OpenCV's uint8 resizes are."""
    from vbg.resize import halvings

    torch, F = _torch()
    h, w = hw
    for _ in range(halvings(tuple(x.shape[2:]), (h, w))):
        x = F.avg_pool2d(x, 2)
        if round_steps:
            x = torch.round(x)
    sh, sw = x.shape[2:]
    if (sh, sw) == (h, w):
        return x
    if sh < 2 * h and sw < 2 * w:
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    else:
        x = F.interpolate(x, size=(h, w), mode="area")
    return torch.round(x) if round_steps else x


def upsample(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with OpenCV's pixel-centre convention (align_corners=False)."""
    _, F = _torch()
    if tuple(x.shape[2:]) == tuple(hw):
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False)


@lru_cache(maxsize=64)
def _symmetric_index(n: int, r: int, device: str) -> torch.Tensor:
    # OpenCV's BORDER_REFLECT: fedcba|abcdef|fedcba (the edge pixel repeated). Cached per
    # device: made once, not uploaded again by every box filter of every frame.
    torch, _ = _torch()
    idx = [min(max(i, -1 - i), 2 * n - 1 - i) for i in range(-r, n + r)]
    return torch.tensor([min(max(i, 0), n - 1) for i in idx], device=device)


@lru_cache(maxsize=64)
def _const(values: tuple[float, ...], shape: tuple[int, ...], device: str, dtype: str):
    """A small constant tensor (taps, normalisation) kept on the device."""
    torch, _ = _torch()
    return torch.tensor(values, dtype=getattr(torch, dtype), device=device).view(shape)


def box_reflect(x: torch.Tensor, r: int) -> torch.Tensor:
    """cv2.boxFilter (normalised, (2r+1)^2, BORDER_REFLECT) on (N, C, h, w)."""
    _, F = _torch()
    h, w = x.shape[2:]
    rows = _symmetric_index(h, r, str(x.device))
    cols = _symmetric_index(w, r, str(x.device))
    padded = x.index_select(2, rows).index_select(3, cols)
    return F.avg_pool2d(padded, 2 * r + 1, stride=1)


def morph(x: torch.Tensor, kernel: np.ndarray | None, op: str) -> torch.Tensor:
    """cv2.erode / cv2.dilate with a structuring element on (N, C, h, w) float, with
    OpenCV's default border (pixels outside never win). op: "erode" | "dilate"."""
    if kernel is None:
        return x
    torch, F = _torch()
    kh, kw = kernel.shape
    ry, rx = kh // 2, kw // 2
    fill = float("inf") if op == "erode" else float("-inf")
    padded = F.pad(x, (rx, rx, ry, ry), value=fill)
    h, w = x.shape[2:]
    out = None
    pick = torch.minimum if op == "erode" else torch.maximum
    for dy, dx in zip(*np.nonzero(kernel), strict=True):
        shifted = padded[:, :, dy : dy + h, dx : dx + w]
        out = shifted if out is None else pick(out, shifted)
    return out


def morph_replicate(x: torch.Tensor, radius: int, op: str) -> torch.Tensor:
    """Square (2r+1)^2 erode/dilate with BORDER_REPLICATE (vbg.cleanup.MatteBounds)."""
    _, F = _torch()
    k = 2 * radius + 1
    padded = F.pad(x, (radius,) * 4, mode="replicate")
    if op == "dilate":
        return F.max_pool2d(padded, k, stride=1)
    return -F.max_pool2d(-padded, k, stride=1)


@lru_cache(maxsize=32)
def _gauss_taps(k: int) -> tuple[float, ...]:
    import cv2

    return tuple(float(v) for v in cv2.getGaussianKernel(k, 0).ravel())


def gaussian_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """cv2.GaussianBlur(x, (k, k), 0) on (N, C, h, w): separable, BORDER_REFLECT_101."""
    if k <= 1:
        return x
    _, F = _torch()
    taps = _const(_gauss_taps(k), (k,), str(x.device), str(x.dtype).split(".")[-1])
    c = x.shape[1]
    r = k // 2
    h, w = x.shape[2:]
    # torch's "reflect" is OpenCV's REFLECT_101; it needs the pad below the side.
    mode = "reflect" if r < h and r < w else "replicate"
    x = F.pad(x, (r, r, 0, 0), mode=mode)
    x = F.conv2d(x, taps.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    x = F.pad(x, (0, 0, r, r), mode=mode)
    return F.conv2d(x, taps.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def normalize(small: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Planar BGR 0..255 at model resolution -> the model's input, as vbg.segmenter."""
    from vbg.segmenter import _norm_coeffs

    a, b = _norm_coeffs(spec)
    order = [2, 1, 0] if spec.color_order == "RGB" else [0, 1, 2]
    x = small[:, order]
    dev, dt = str(x.device), str(x.dtype).split(".")[-1]
    return x * _const(a, (1, 3, 1, 1), dev, dt) - _const(b, (1, 3, 1, 1), dev, dt)


def guided_upsample(
    prob: torch.Tensor,
    guide_small: torch.Tensor,
    guide: torch.Tensor,
    radius: int,
    eps: float,
) -> torch.Tensor:
    """vbg.guided.GuidedUpsampler: (N, 1, h, w) prob, grey guides 0..255 at (h, w) and
    (H, W) -> alpha (N, 1, H, W) float, rounded and clamped to 0..255."""
    torch, _ = _torch()
    i = guide_small
    mean_i = box_reflect(i, radius)
    mean_p = box_reflect(prob, radius)
    cov = box_reflect(i * prob, radius) - mean_i * mean_p
    var = box_reflect(i * i, radius) - mean_i * mean_i + eps * 255.0 * 255.0
    a = cov / var
    b = mean_p - a * mean_i
    big_a = upsample(box_reflect(a, radius) * 255.0, tuple(guide.shape[2:]))
    big_b = upsample(box_reflect(b, radius) * 255.0, tuple(guide.shape[2:]))
    return torch.round(big_a * guide + big_b).clamp_(0, 255)


def bound_matte(prob: torch.Tensor, matte: torch.Tensor, radius: int, lut: np.ndarray):
    """vbg.cleanup.MatteBounds: clamp between the upsampled erosion and dilation of the
    model's probability, then the levels lookup table."""
    torch, _ = _torch()
    p8 = torch.round(prob * 255.0).clamp_(0, 255)
    hw = tuple(matte.shape[2:])
    hi = torch.round(upsample(morph_replicate(p8, radius, "dilate"), hw))
    lo = torch.round(upsample(morph_replicate(p8, radius, "erode"), hw))
    # Same order as the host path: min with the dilation, then max with the erosion.
    m = torch.maximum(torch.minimum(matte, hi), lo)
    table = _const(tuple(float(v) for v in lut), (256,), str(m.device), "float32")
    return table[m.long()]


def blend(frame: torch.Tensor, bg: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """vbg.compose.Compositor.blend: round(f*a/255) + round(bg*(255-a)/255), saturated."""
    torch, _ = _torch()
    fg = torch.round(frame * alpha / 255.0)
    back = torch.round(bg * (255.0 - alpha) / 255.0)
    return (fg + back).clamp_(0, 255)


def halo_free_blur(frame: torch.Tensor, alpha: torch.Tensor, ksize: int) -> torch.Tensor:
    """vbg.blur.HaloFreeBlur on planar frames (N, 3, H, W) and alpha (N, 1, H, W)."""
    from vbg.blur import BLUR_MAX_DOWNSCALE

    torch, F = _torch()
    h, w = frame.shape[2:]
    f = max(1, min(BLUR_MAX_DOWNSCALE, ksize // 8, h // 8 or 1, w // 8 or 1))
    f = 1 << (f.bit_length() - 1)
    sh, sw = max(1, h // f), max(1, w // f)
    ks = max(1, ksize // f) | 1
    weight = (255.0 - 2.0 * alpha).clamp_(0, 255)
    premul = torch.round(frame * weight / 255.0)
    if (sh, sw) != (h, w):
        premul = torch.round(F.interpolate(premul, size=(sh, sw), mode="area"))
        weight = torch.round(F.interpolate(weight, size=(sh, sw), mode="area"))
    num = gaussian_blur(premul, ks)
    den = gaussian_blur(weight, ks).clamp_(min=0.25)
    small = torch.round((num / den * 255.0).clamp_(0, 255))
    if (sh, sw) == (h, w):
        return small
    return torch.round(upsample(small, (h, w))).clamp_(0, 255)


def light_wrap(
    out: torch.Tensor, alpha: torch.Tensor, bg_blur: torch.Tensor, strength: float, k: int
) -> torch.Tensor:
    """vbg.lightwrap.LightWrap: blend the blurred background into the inner edge band."""
    from vbg.lightwrap import SHRINK

    torch, F = _torch()
    h, w = alpha.shape[2:]
    small_hw = (max(1, h // SHRINK), max(1, w // SHRINK))
    # Bilinear, as the host (vbg.lightwrap): the central 2x2 of each 4x4 block.
    small_alpha = torch.round(
        F.interpolate(alpha, size=small_hw, mode="bilinear", align_corners=False)
    )
    small = torch.round(gaussian_blur(255.0 - small_alpha, k))
    wt = torch.round(upsample(small, (h, w)))
    wt = torch.round(wt * alpha * (strength / 255.0))
    return torch.round((out * (255.0 - wt) + bg_blur * wt) / 255.0)


def box_sum(x: torch.Tensor, k: int) -> torch.Tensor:
    """cv2.boxFilter(normalize=False), k x k, default border (REFLECT_101)."""
    _, F = _torch()
    r = k // 2
    h, w = x.shape[2:]
    mode = "reflect" if r < h and r < w else "replicate"
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode=mode), k, stride=1) * float(k * k)


def decontaminate(
    frame: torch.Tensor, alpha: torch.Tensor, radius: int = 8, sure: int = 230
) -> torch.Tensor:
    """vbg.edges.EdgeColors: soft-edge pixels take the mean colour of the sure foreground
    around them (computed at 1/f resolution from block means of entirely sure blocks)."""
    from vbg.edges import reduction

    torch, F = _torch()
    H, W = alpha.shape[2:]
    f = reduction(radius)
    h, w = max(1, H // f), max(1, W // f)
    k = 2 * (radius // f + 1) + 1
    sure_mask = (alpha >= sure).float() * 255.0
    colours = area_shrink(frame, (h, w))
    full = (area_shrink(sure_mask, (h, w)) >= 255.0).float()
    c_sum = box_sum(colours * full, k)
    m_sum = box_sum(full, k)
    mean = torch.where(m_sum > 0, torch.round(c_sum / m_sum.clamp(min=1e-6)), 0.0)
    near = m_sum > 0.5
    mean = torch.where(near, mean.clamp(0, 255), colours)
    near_big = F.interpolate(near.float(), size=(H, W), mode="nearest") > 0
    band = (alpha >= 1) & (alpha <= sure - 1) & near_big
    mean_big = torch.round(upsample(mean, (H, W)))
    return torch.where(band, mean_big, frame)


# ------------------------------------------------------------------ temporal state


class DeviceTemporal:
    """vbg.temporal.TemporalSmoother on (1, 1, h, w) tensors, with no host sync per frame:
    the scene-cut test and the first-frame case are tensor selects, not branches."""

    def __init__(self, cfg: TemporalConfig) -> None:
        from vbg.temporal import ellipse_kernel

        self.cfg = cfg
        self._open = ellipse_kernel(cfg.open_px)
        self._close = ellipse_kernel(cfg.close_px)
        self.state: torch.Tensor | None = None
        self.side: torch.Tensor | None = None  # float 1/0, where the last output was person
        self.has_side: torch.Tensor | None = None  # float 1/0 scalar: side is valid

    def reset(self) -> None:
        self.state = self.side = self.has_side = None

    def __call__(self, prob: torch.Tensor) -> torch.Tensor:
        torch, _ = _torch()
        c = self.cfg
        if self.state is None or self.state.shape != prob.shape:
            self.state = prob.clone()
            self.has_side = torch.zeros((), device=prob.device)
        else:
            change = (prob - self.state).abs().mean()
            cut = change > c.cut_threshold
            if c.mode == "adaptive":
                diff = prob - self.state
                wgt = diff.abs().clamp_(max=c.move_diff)
                wgt = wgt * ((1.0 - c.still_weight) / c.move_diff) + c.still_weight
                blended = self.state + diff * wgt
            else:
                blended = self.state + c.ema * (prob - self.state)
            self.state = torch.where(cut, prob, blended)
            self.has_side = torch.where(cut, torch.zeros_like(self.has_side), self.has_side)
        out = self.state.clone()
        if c.hysteresis > 0 and c.mode == "adaptive":
            h = c.hysteresis
            if self.side is not None and self.side.shape == out.shape:
                tent = (1.0 - (out - 0.5).abs() / (2 * h)).clamp_(min=0.0)
                sign = self.side * (2.0 * h) - h
                out = (out + tent * sign * self.has_side).clamp_(0.0, 1.0)
            self.side = (out >= 0.5).float()
            self.has_side = torch.ones((), device=prob.device)
        out = morph(morph(out, self._open, "erode"), self._open, "dilate")
        out = morph(morph(out, self._close, "dilate"), self._close, "erode")
        return out


# ------------------------------------------------------------------ the whole frame


@dataclass(frozen=True)
class DevicePathConfig:
    """What the device path does after the network (the host path's defaults)."""

    temporal: TemporalConfig | None = None  # None: no temporal smoothing
    bounds: bool = True  # vbg.cleanup.MatteBounds
    min_area: float = 0.01  # vbg.cleanup.ComponentFilter (host, model resolution); 0 = off
    max_hole: float = 0.005
    light_wrap: bool = True  # image backgrounds only, as on the host
    tta: bool = False  # average with the mirrored frame's prediction (vbg process)
    decontaminate: bool = False  # vbg.edges.EdgeColors before compositing (vbg process)


class DevicePath:
    """Frames (uint8, on the host) -> composited frames or alpha mattes, on one device.

    network: (N, 3, h, w) float tensor on `device` -> (N, 1, h, w) raw output (logits or
    probability, as the card says), e.g. TorchEngine.run_tensor.
    Background: set_background() with a fitted (H, W, 3) uint8 image, a BGR colour, or a
    blur strength; it is uploaded once and stays on the device.
    """

    def __init__(
        self,
        card: Any,
        network: Callable[[torch.Tensor], torch.Tensor],
        device: str | torch.device = "cuda",
        cfg: DevicePathConfig | None = None,
    ) -> None:
        from vbg.cleanup import ComponentFilter, MatteBounds
        from vbg.guided import GUIDED_EPS, GUIDED_RADIUS

        torch, _ = _torch()
        self.card = card
        self.network = network
        self.device = torch.device(device)
        self.cfg = cfg or DevicePathConfig()
        self.temporal = DeviceTemporal(self.cfg.temporal) if self.cfg.temporal else None
        bounds = MatteBounds()
        self._lut = bounds._lut if self.cfg.bounds else None
        self._components = (
            ComponentFilter(self.cfg.min_area, self.cfg.max_hole)
            if self.cfg.min_area or self.cfg.max_hole
            else None
        )
        self._radius, self._eps = GUIDED_RADIUS, GUIDED_EPS
        self._bg: torch.Tensor | None = None  # (1, 3, H, W) float 0..255
        self._bg_blur: torch.Tensor | None = None  # light wrap's blurred background
        self._wrap_k = 0
        self._blur_ksize = 0
        self._wrap_strength = 0.0
        self._pinned: dict[str, torch.Tensor] = {}

    # --- background --------------------------------------------------------------------

    def set_background(
        self,
        image_bgr: np.ndarray | None = None,
        *,
        color_bgr: tuple[int, int, int] | None = None,
        blur_ksize: int = 0,
    ) -> None:
        """One of: a fitted background image (H, W, 3) uint8, a colour, a blur strength."""
        torch, _ = _torch()
        self._bg = self._bg_blur = None
        self._blur_ksize = 0
        if blur_ksize:
            self._blur_ksize = int(blur_ksize)
        elif color_bgr is not None:
            c = torch.tensor(color_bgr, dtype=torch.float32, device=self.device)
            self._bg = c.view(1, 3, 1, 1)
        elif image_bgr is not None:
            t = torch.from_numpy(np.ascontiguousarray(image_bgr)).to(self.device)
            self._bg = to_planar(t[None])
            if self.cfg.light_wrap:
                from vbg.lightwrap import SHRINK, LightWrap

                lw = LightWrap()
                lw.set_background(image_bgr)
                self._bg_blur = to_planar(torch.from_numpy(lw._bg_blur).to(self.device)[None])
                h, w = image_bgr.shape[:2]
                r = max(1, round(lw.radius_frac * min(h, w) / SHRINK))
                self._wrap_k, self._wrap_strength = 2 * r + 1, lw.strength
        else:
            raise ValueError("set_background needs an image, a colour or a blur strength")

    def reset(self) -> None:
        if self.temporal is not None:
            self.temporal.reset()

    # --- per batch -----------------------------------------------------------------------

    def upload(self, frames_bgr: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) or (H, W, 3) uint8 host frames -> planar float on the device, through
        a pinned host buffer on CUDA (an asynchronous copy)."""
        torch, _ = _torch()
        f = frames_bgr if frames_bgr.ndim == 4 else frames_bgr[None]
        if f.dtype != np.uint8 or f.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), not {f.dtype} {f.shape}")
        host = torch.from_numpy(np.ascontiguousarray(f))
        if self.device.type == "cuda":
            buf = self._pinned.get("in")
            if buf is None or buf.shape != host.shape:
                buf = self._pinned["in"] = torch.empty(host.shape, dtype=torch.uint8).pin_memory()
            buf.copy_(host)
            host = buf
        return to_planar(host.to(self.device, non_blocking=True))

    def probability(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Planar frames -> (probability (N, 1, h, w) before smoothing, small BGR image)."""
        torch, _ = _torch()
        from vbg.segmenter import model_input_size

        h, w = model_input_size(x.shape[2], x.shape[3], self.card.input)
        small = (
            area_shrink(x, (h, w))
            if h <= x.shape[2] and w <= x.shape[3]
            else (torch.round(upsample(x, (h, w))))
        )
        x_in = normalize(small, self.card.input)
        n = x_in.shape[0]
        if self.cfg.tta:  # the mirrored frames in the same batch: one network call
            x_in = torch.cat([x_in, x_in.flip(-1)])
        y = self.network(x_in).float()
        if tuple(y.shape[2:]) != (h, w):
            y = upsample(y, (h, w))
        y = y[:, :1]
        prob = torch.sigmoid(y) if self.card.output.kind == "logits" else y.clamp(0.0, 1.0)
        if self.cfg.tta:
            prob = (prob[:n] + prob[n:].flip(-1)) * 0.5
        return prob, small

    def _smooth(self, prob: torch.Tensor) -> torch.Tensor:
        torch, _ = _torch()
        if self.temporal is not None:
            prob = torch.cat([self.temporal(prob[i : i + 1]) for i in range(prob.shape[0])])
        if self._components is not None:
            host = prob.detach().cpu().numpy()
            # np.array(copy): the filter returns one buffer, reused by its next call.
            cleaned = np.stack(
                [np.array(self._components(host[i, 0]), copy=True) for i in range(len(host))]
            )
            prob = torch.from_numpy(cleaned[:, None]).to(self.device)
        return prob

    def alpha(self, x: torch.Tensor) -> torch.Tensor:
        """Planar frames (N, 3, H, W) -> alpha (N, 1, H, W) float 0..255 (rounded)."""
        prob, small = self.probability(x)
        prob = self._smooth(prob)
        matte = guided_upsample(prob, gray(small), gray(x), self._radius, self._eps)
        if self._lut is not None:
            matte = bound_matte(prob, matte, 1, self._lut)
        return matte

    def composite(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        if self.cfg.decontaminate:
            x = decontaminate(x, alpha)
        if self._blur_ksize:
            bg = halo_free_blur(x, alpha, self._blur_ksize)
        elif self._bg is not None:
            bg = self._bg
        else:
            raise VbgError("no background set on the device path")
        out = blend(x, bg, alpha)
        if self._bg_blur is not None:
            out = light_wrap(out, alpha, self._bg_blur, self._wrap_strength, self._wrap_k)
        return out

    def _download(self, t: torch.Tensor) -> np.ndarray:
        if self.device.type != "cuda":
            return t.numpy()
        torch, _ = _torch()
        buf = self._pinned.get("out")
        if buf is None or buf.shape != t.shape:
            buf = self._pinned["out"] = torch.empty(t.shape, dtype=t.dtype).pin_memory()
        buf.copy_(t)  # synchronises: the result is needed on the host now
        return buf.numpy()

    def process(self, frames_bgr: np.ndarray) -> np.ndarray:
        """Host frames (N, H, W, 3) or (H, W, 3) -> composited frames, same shape, uint8.
        The result may be a pinned buffer reused by the next call (copy it to keep it)."""
        return self.process_with_alpha(frames_bgr, with_alpha=False)[0]

    def process_with_alpha(
        self, frames_bgr: np.ndarray, with_alpha: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(composited frames, their alpha mattes uint8 or None), one pass of the state."""
        torch, _ = _torch()
        with torch.inference_mode():
            x = self.upload(frames_bgr)
            alpha = self.alpha(x)
            out = to_interleaved_u8(self.composite(x, alpha))
            host = self._download(out)
            a = alpha[:, 0].to(torch.uint8).cpu().numpy() if with_alpha else None
        if frames_bgr.ndim == 3:
            return host[0], (a[0] if a is not None else None)
        return host, a

    def mask(self, frames_bgr: np.ndarray) -> np.ndarray:
        """Host frames -> alpha mattes uint8 (N, H, W) or (H, W)."""
        torch, _ = _torch()
        with torch.inference_mode():
            a = self.alpha(self.upload(frames_bgr))[:, 0].to(torch.uint8)
            host = self._download(a)
        return host if frames_bgr.ndim == 4 else host[0]

"""A previous-mask input ("prior") for a model that learns temporal stability.

A prior model takes a fourth input channel: its own person probability on the previous
frame, at model resolution, encoded as 2p - 1 (so 0 means "no previous frame": a still, the
first frame, a scene cut). It learns to keep what the last frame said where the picture
agrees and to correct it where the picture disagrees, which is what removes flicker at the
edges without the lag of a moving average.

Training needs a previous frame's mask for every image. Labelled consecutive frames are
few (the corpus's DAVIS clips), so the prior is synthesised from the image's own ground
truth, as the previous frame's mask would look: moved, turned and zoomed a little (the
person moved), dilated or eroded (the last prediction was too fat or too thin), blurred
(soft edges), with low-frequency blobs added and removed (false positives, holes), and at
times absent or belonging to another image (a cut the runtime did not see). The
perturbations are larger than the motion between frames, so the model cannot just copy the
prior: it must read the picture.

The runtime (vbg.segmenter) feeds back its raw probability each frame and zeroes the
channel on a reset or a wholesale change of the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

UNKNOWN = 0.0  # the encoded channel where there is no previous frame (p = 0.5)


@dataclass(frozen=True)
class PriorSynthesis:
    """How a training image's ground truth becomes a plausible previous-frame mask."""

    unknown: float = 0.15  # share of samples with no prior (the channel all UNKNOWN)
    other: float = 0.05  # share whose prior is another image's (a missed scene cut)
    shift: float = 0.04  # std of the translation, in units of half the image side
    turn_deg: float = 5.0  # std of the rotation
    zoom: float = 0.05  # std of the log scale
    morph_px: int = 4  # dilate or erode by up to this many pixels
    blur_px: int = 4  # box blur of up to 2 * this + 1 pixels
    blobs: float = 0.35  # amplitude of the low-frequency noise added to the probability

    def scaled(self, jitter: float) -> PriorSynthesis:
        """Every perturbation's size times `jitter` (the shares of absent and other
        images' priors stay): config's prior_jitter."""
        return PriorSynthesis(
            unknown=self.unknown,
            other=self.other,
            shift=self.shift * jitter,
            turn_deg=self.turn_deg * jitter,
            zoom=self.zoom * jitter,
            morph_px=round(self.morph_px * jitter),
            blur_px=round(self.blur_px * jitter),
            blobs=self.blobs * jitter,
        )

    def __call__(self, mask: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """mask (B, 1, H, W) in [0, 1] -> the prior channel (B, 1, H, W), encoded 2p - 1."""
        import torch
        import torch.nn.functional as F

        b, _, h, w = mask.shape
        dev = mask.device

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=gen, device="cpu").to(dev)

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=gen, device="cpu").to(dev)

        # The person moved: a random similarity transform per sample.
        angle = randn(b) * math.radians(self.turn_deg)
        scale = torch.exp(randn(b) * self.zoom)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        shift = (randn(b, 2) * self.shift).clamp(-4 * self.shift, 4 * self.shift)
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
        p = F.grid_sample(
            mask.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        # Too fat or too thin, then soft: per sample, as radii differ.
        rows = []
        for i in range(b):
            q = p[i : i + 1]
            r = int(rand(1).item() * (self.morph_px + 1))
            if r > 0:
                k = 2 * r + 1
                q = F.max_pool2d(q, k, 1, r) if rand(1).item() < 0.5 else -F.max_pool2d(-q, k, 1, r)
            r = int(rand(1).item() * (self.blur_px + 1))
            if r > 0:
                q = F.avg_pool2d(q, 2 * r + 1, 1, r, count_include_pad=False)
            rows.append(q)
        p = torch.cat(rows)
        # False positives and holes: smooth noise, one cell per 16 pixels.
        noise = randn(b, 1, max(1, h // 16), max(1, w // 16))
        noise = F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False)
        p = (p + noise * (rand(b, 1, 1, 1) * self.blobs)).clamp(0.0, 1.0)
        if b > 1:  # another image's (moved) prior: the model must not trust it blindly
            other = rand(b) < self.other
            p = torch.where(other[:, None, None, None], p.roll(1, 0), p)
        prior = p * 2.0 - 1.0
        unknown = rand(b) < self.unknown
        return torch.where(unknown[:, None, None, None], torch.full_like(prior, UNKNOWN), prior)


def with_prior(
    x: torch.Tensor, mask: torch.Tensor, synth: PriorSynthesis, gen: torch.Generator | None = None
) -> torch.Tensor:
    """The 4-channel input: the image batch and a prior synthesised from its targets."""
    import torch

    return torch.cat([x, synth(mask, gen).to(x.dtype)], 1)


def pad_unknown_prior(module: torch.nn.Module, args: tuple) -> tuple | None:
    """Forward pre-hook of a prior model: a 3-channel input (a still image, evaluation,
    the export check) gets the "no previous frame" channel, so every caller that feeds
    images works unchanged."""
    import torch

    (x, *rest) = args
    if x.ndim == 4 and x.shape[1] == 3:
        pad = torch.full_like(x[:, :1], UNKNOWN)
        return (torch.cat([x, pad], 1), *rest)
    return None


def widen_first_conv(
    sd: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A stateless model's weights for its prior version: every 3-input-channel kernel that
    the target has with 4 gets a zero fourth channel, so training starts from exactly the
    stateless network (the prior is ignored until the model learns to use it)."""
    import torch

    out = dict(sd)
    for k, v in sd.items():
        t = target.get(k)
        if t is None or v.ndim != 4 or (v.shape[1], t.shape[1]) != (3, 4):
            continue
        if v.shape[0] == t.shape[0] and v.shape[2:] == t.shape[2:]:
            out[k] = torch.cat([v, torch.zeros_like(v[:, :1])], 1)
    return out

"""Losses for person segmentation: BCE + soft Dice, and an optional boundary-aware term.

`seg_losses` returns a dict with every term and their weighted sum under "total" (as Robust
Video Matting does), so each term is logged on its own. Pixels where `ignore` is 1 (crowd
regions when crowd="ignore") take no part in any term.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from train.config import TrainConfig


def seg_losses(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore: torch.Tensor | None = None,
    *,
    bce_weight: float = 1.0,
    dice_weight: float = 1.0,
    boundary_weight: float = 0.0,
    boundary_px: int = 3,
    smooth: float = 1.0,
) -> dict[str, torch.Tensor]:
    """logits, target, ignore: (N,1,H,W); target and ignore in {0,1}.

    bce:      mean binary cross-entropy over the valid (not ignored) pixels of the batch.
    dice:     1 - soft Dice per image, averaged over images (the metric is per image too).
              `smooth` keeps images without a person defined: an empty prediction on an
              empty target costs 0.
    boundary: BCE averaged over the valid pixels within `boundary_px` of the true outline,
              where the mask's quality shows (hair, fingers); only computed when weighted.
    """
    import torch
    import torch.nn.functional as F

    # The loss is computed in fp32 even under autocast: log/sigmoid of fp16 logits lose
    # precision exactly at the confident pixels that dominate the sums.
    logits = logits.float()
    target = target.float()
    valid = torch.ones_like(target) if ignore is None else 1.0 - ignore.float()

    bce_map = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (bce_map * valid).sum() / valid.sum().clamp(min=1.0)

    prob = torch.sigmoid(logits) * valid
    t = target * valid
    dims = (1, 2, 3)
    inter = (prob * t).sum(dims)
    dice = 1.0 - (2.0 * inter + smooth) / (prob.sum(dims) + t.sum(dims) + smooth)
    dice = dice.mean()

    out = {"bce": bce, "dice": dice}
    total = bce_weight * bce + dice_weight * dice
    if boundary_weight > 0:
        band = boundary_band(target, boundary_px) * valid
        out["boundary"] = (bce_map * band).sum() / band.sum().clamp(min=1.0)
        total = total + boundary_weight * out["boundary"]
    out["total"] = total
    return out


def boundary_band(target: torch.Tensor, px: int) -> torch.Tensor:
    """1 on pixels within `px` of the mask's outline (dilation minus erosion), else 0."""
    import torch.nn.functional as F

    k = 2 * px + 1
    dilated = F.max_pool2d(target, k, stride=1, padding=px)
    eroded = 1.0 - F.max_pool2d(1.0 - target, k, stride=1, padding=px)
    return dilated - eroded


def loss_from_config(cfg: TrainConfig):
    """seg_losses with the config's weights bound: fn(logits, mask, ignore) -> dict."""

    def fn(logits, mask, ignore=None):
        return seg_losses(
            logits,
            mask,
            ignore,
            bce_weight=cfg.bce_weight,
            dice_weight=cfg.dice_weight,
            boundary_weight=cfg.boundary_weight,
            boundary_px=cfg.boundary_px,
        )

    return fn

"""Distillation: a trained teacher's soft masks as a second training target.

Human masks are hard (0/1) and few; a larger model's probabilities carry what it learned
about uncertain pixels (hair, motion blur, the soft outline) and can label every crop the
augmentation makes. The student's loss gets one more term, BCE against the teacher's
probability on the same augmented input, weighted by `distill_weight`, beside the usual
terms against the human mask.

The teacher is a vbg model card with torch weights (vbg.engines.torch_engine.build_module
rebuilds it). It must see the input exactly as the student does, so its card's
normalisation has to match the training config's. Licence: a teacher's outputs become
training data, so it must be a model whose licence allows that (Apache-2.0, MIT, BSD, or
our own); a GPL model such as Robust Video Matting is a peer to measure against, never a
teacher. The card's `training.licence`, when present, is checked for "GPL".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vbg import VbgError

if TYPE_CHECKING:
    import torch

    from train.config import TrainConfig


def load_teacher(cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    """The teacher network in eval mode on `device`, checked against the config."""
    from vbg.card import load_card
    from vbg.engines.torch_engine import build_module

    card = load_card(cfg.teacher)
    licence = str((card.training or {}).get("licence", ""))
    if "GPL" in licence.upper() and "LGPL" not in licence.upper():
        raise VbgError(f"teacher {cfg.teacher}: a {licence} model may not be a teacher")
    spec = card.input
    mine = (cfg.color_order, tuple(cfg.mean), tuple(cfg.std))
    theirs = (spec.color_order, tuple(spec.mean), tuple(spec.std))
    if mine != theirs or spec.scale != 255.0:
        raise VbgError(
            f"teacher {cfg.teacher} normalises its input differently ({theirs}) from this "
            f"config ({mine}); it would see other pixels than the student"
        )
    if card.output.kind != "logits":
        raise VbgError(f"teacher {cfg.teacher}: output kind {card.output.kind!r}, need logits")
    module = build_module(card).to(device).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def with_distillation(loss_fn: Any, teacher: torch.nn.Module, weight: float) -> Any:
    """loss_fn(logits, y, ign) -> loss_fn(logits, y, ign, x) with the "distill" term added
    to the returned dict and to "total"."""
    import torch
    import torch.nn.functional as F

    def loss(logits, y, ign, x=None):
        out = loss_fn(logits, y, ign)
        if x is None:  # validation: the human masks only, comparable across runs
            return out
        with torch.no_grad():
            target = torch.sigmoid(teacher(x[:, :3]).float())  # a prior student: image only
        valid = 1.0 - ign.float()
        bce = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
        term = (bce * valid).sum() / valid.sum().clamp(min=1.0)
        out["distill"] = term
        out["total"] = out["total"] + weight * term
        return out

    loss.takes_input = True  # train_one_epoch passes the batch input
    return loss

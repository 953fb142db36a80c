"""Distillation: the teacher's soft masks as a loss term, and the checks on the teacher."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("pycocotools")

from tests.train.fitutil import tiny_config, tiny_data  # noqa: E402
from vbg import VbgError  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("coco"))


def test_distill_term_is_bce_against_the_teachers_probability():
    from train.distill import with_distillation
    from train.losses import seg_losses

    class Teacher(torch.nn.Module):
        def forward(self, x):
            return x[:, :1] * 0.0 + 2.0  # probability sigmoid(2) everywhere

    loss = with_distillation(seg_losses, Teacher(), 0.5)
    logits = torch.zeros(2, 1, 8, 8)
    y = torch.ones(2, 1, 8, 8)
    ign = torch.zeros(2, 1, 8, 8)
    ign[:, :, :2] = 1  # ignored pixels take no part
    plain = seg_losses(logits, y, ign)
    got = loss(logits, y, ign, torch.zeros(2, 3, 8, 8))
    p = torch.sigmoid(torch.tensor(2.0))
    want = -(p * torch.log(torch.tensor(0.5)) + (1 - p) * torch.log(torch.tensor(0.5)))
    assert torch.isclose(got["distill"], want, atol=1e-6)
    assert torch.isclose(got["total"], plain["total"] + 0.5 * want, atol=1e-6)
    assert "distill" not in loss(logits, y, ign)  # validation: human masks only


def test_fit_with_a_teacher_logs_the_term(data, tmp_path, tiny_card):
    from train.fit import fit

    ann, images = data
    cfg = tiny_config(ann, images, tmp_path / "run", teacher=str(tiny_card), distill_weight=1.0)
    fit(cfg)
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert log[-1]["train_loss_distill"] > 0


def test_teacher_must_see_what_the_student_sees_and_may_not_be_gpl(data, tmp_path, tiny_card):
    from train.distill import load_teacher
    from vbg.card import load_card

    ann, images = data
    cfg = tiny_config(ann, images, tmp_path / "r", teacher=str(tiny_card), distill_weight=1.0)
    with pytest.raises(VbgError, match="normalises its input differently"):
        load_teacher(tiny_config(ann, images, tmp_path / "r", teacher=str(tiny_card),
                                 distill_weight=1.0, mean=(0.5, 0.5, 0.5)), torch.device("cpu"))  # fmt: skip
    card = load_card(tiny_card)
    card.training["licence"] = "GPL-3.0"
    gpl = card.save(tiny_card.parent / "gpl.json")
    with pytest.raises(VbgError, match="may not be a teacher"):
        load_teacher(tiny_config(ann, images, tmp_path / "r", teacher=str(gpl),
                                 distill_weight=1.0), torch.device("cpu"))  # fmt: skip
    assert load_teacher(cfg, torch.device("cpu")) is not None


def test_distill_weight_needs_a_teacher(data, tmp_path):
    ann, images = data
    with pytest.raises(VbgError, match="only with a teacher"):
        tiny_config(ann, images, tmp_path / "r", distill_weight=1.0)

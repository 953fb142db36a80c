"""Training fails loudly and safely: skipped annotations, a non-finite loss, a corrupt
checkpoint."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pycocotools")

from train.data import annotation_mask  # noqa: E402
from train.fit import (  # noqa: E402
    CHECKPOINT_FORMAT,
    load_checkpoint,
    load_checkpoint_or_previous,
    save_atomic,
    train_one_epoch,
)
from vbg import VbgError  # noqa: E402


def test_two_point_polygon_is_skipped_not_a_crash(capsys):
    ann = {"id": 77, "image_id": 1, "segmentation": [[1, 1, 5, 5]], "category_id": 1}
    assert annotation_mask(ann, 10, 10) is None
    assert "skipped annotation 77" in capsys.readouterr().out
    ok = {"id": 78, "image_id": 1, "segmentation": [[1, 1, 8, 1, 8, 8]], "category_id": 1}
    m = annotation_mask(ok, 10, 10)
    assert m is not None and m.shape == (10, 10) and m.sum() > 0


def test_non_finite_loss_stops_the_epoch():
    model = torch.nn.Conv2d(3, 1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    batch = {"image": torch.zeros(1, 3, 4, 4), "mask": torch.zeros(1, 1, 4, 4)}
    batch["ignore"] = torch.zeros(1, 1, 4, 4)

    def nan_loss(logits, y, ign):
        return {"total": logits.mean() * float("nan")}

    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(VbgError, match="loss became nan"):
        train_one_epoch(
            model, [batch], opt, sched, scaler, nan_loss, torch.device("cpu"), show=False
        )
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_corrupt_last_checkpoint_falls_back_to_the_previous(tmp_path):
    last = tmp_path / "last.pt"
    save_atomic({"format": CHECKPOINT_FORMAT, "epoch": 1}, last, keep_previous=True)
    save_atomic({"format": CHECKPOINT_FORMAT, "epoch": 2}, last, keep_previous=True)
    assert load_checkpoint(last)["epoch"] == 2
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flipped bytes that torch.load might not notice
    last.write_bytes(bytes(data))
    with pytest.raises(VbgError, match="corrupt"):
        load_checkpoint(last)
    said: list[str] = []
    assert load_checkpoint_or_previous(last, said.append)["epoch"] == 1
    assert "previous checkpoint" in said[0]


def test_fit_skips_and_counts_a_two_point_polygon(tmp_path, capsys):
    """Regression: an annotation `train check` skips crashed `train fit` mid-epoch."""
    import json

    from tests.train.fitutil import tiny_config, tiny_data
    from train.fit import fit

    ann, images = tiny_data(tmp_path / "data")
    d = json.loads(ann.read_text())
    person = next(a for a in d["annotations"] if a["category_id"] == 1 and not a.get("iscrowd"))
    person["segmentation"] = [[1, 1, 5, 5]]  # two points: not a polygon
    ann.write_text(json.dumps(d))
    result = fit(tiny_config(ann, images, tmp_path / "run"))
    out = capsys.readouterr().out
    assert "skipping 1 person annotation " in out and str(person["id"]) in out
    assert (result.run_dir / "last.pt").is_file()

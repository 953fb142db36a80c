"""fit on a tiny generated set: run-folder contents, exact resume, time limit, CLI."""

from __future__ import annotations

import json

import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("pycocotools")

from tests.train.fitutil import tiny_config, tiny_data  # noqa: E402
from train.__main__ import main  # noqa: E402
from train.config import make_config  # noqa: E402
from train.fit import fit, load_checkpoint  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("coco"))


def test_fit_writes_the_run_folder(data, tmp_path):
    ann, images = data
    out = tmp_path / "run"
    result = fit(tiny_config(ann, images, out, epochs=2, val_every=2))
    assert result.epochs_done == 2 and not result.stopped_by_time_limit
    for name in ("config.yaml", "last.pt", "best.pt", "log.csv", "log.json", "curves.png"):
        assert (out / name).is_file(), name

    log = json.loads((out / "log.json").read_text())
    assert [r["epoch"] for r in log] == [1, 2]
    assert "val_loss" not in log[0]  # val_every=2: validated after epoch 2 only
    for key in (
        "train_loss",
        "train_loss_bce",
        "train_loss_dice",
        "val_loss",
        "val_dice",
        "val_iou",
        "lr",
        "epoch_seconds",
    ):
        assert key in log[1], key
    assert 0.0 <= log[1]["val_iou"] <= log[1]["val_dice"] <= 1.0
    assert (out / "log.csv").read_text().splitlines()[0].startswith("epoch,step,train_loss")
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    ckpt = load_checkpoint(out / "last.pt")
    for key in (
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "epoch",
        "global_step",
        "rng",
        "config",
    ):
        assert key in ckpt, key
    assert ckpt["epoch"] == 2
    assert set(ckpt["rng"]) >= {"python", "numpy", "torch"}
    assert load_checkpoint(out / "best.pt")["best_epoch"] == 2
    assert not list(out.glob("*.tmp*"))  # atomic writes leave no temporaries

    # Splits: disjoint, groups on one side, COCO subsets that pycocotools reads.
    from pycocotools.coco import COCO

    full = json.loads(ann.read_text())
    ids = json.loads((out / "splits" / "ids.json").read_text())
    sides = {}
    for split in ("train", "val", "test"):
        sub = json.loads((out / "splits" / f"{split}.json").read_text())
        got = sorted(im["id"] for im in sub["images"])
        assert got == sorted(ids[split])
        assert all(a["image_id"] in got for a in sub["annotations"])
        COCO(str(out / "splits" / f"{split}.json"))
        for im in sub["images"]:
            sides[im["id"]] = split
    assert ckpt["global_step"] == 2 * (len(ids["train"]) // 4)  # batch 4, last one dropped
    assert len(sides) == len(full["images"])  # empty_fraction=1: every image used once
    groups = {}
    for im in full["images"]:
        if im.get("group"):
            groups.setdefault(im["group"], set()).add(sides[im["id"]])
    assert groups and all(len(s) == 1 for s in groups.values())

    # The run folder's config names the data absolutely and round-trips as a config file.
    cfg = make_config(out / "config.yaml")
    assert cfg.ann == str(ann.resolve()) and cfg.epochs == 2 and cfg.val_every == 2


@pytest.mark.parametrize("workers", [0, 1])
def test_resume_gives_the_same_weights(data, tmp_path, workers):
    """2 epochs straight == 1 epoch, stop (time limit), resume for the 2nd epoch."""
    ann, images = data
    kw = dict(epochs=2, workers=workers, deterministic=True, copy_paste=0.5)
    straight = fit(tiny_config(ann, images, tmp_path / "a", **kw))

    first = fit(tiny_config(ann, images, tmp_path / "b", time_limit=1e-6, **kw))
    assert first.stopped_by_time_limit and first.epochs_done == 1
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    assert (tmp_path / "b" / "best.pt").is_file()
    assert len(json.loads((tmp_path / "b" / "log.json").read_text())) == 1

    resumed = fit(tiny_config(ann, images, tmp_path / "b", resume="last", **kw))
    assert resumed.epochs_done == 2

    a = load_checkpoint(tmp_path / "a" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["global_step"] == b["global_step"]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for (ka, va), (kb, vb) in zip(
        sorted(a["optimizer"]["state"].items()),
        sorted(b["optimizer"]["state"].items()),
        strict=True,
    ):
        assert ka == kb and torch.equal(va["exp_avg"], vb["exp_avg"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    la = json.loads((tmp_path / "a" / "log.json").read_text())
    lb = json.loads((tmp_path / "b" / "log.json").read_text())
    assert [r["train_loss"] for r in la] == [r["train_loss"] for r in lb]
    assert la[-1]["val_loss"] == lb[-1]["val_loss"]
    # The comparison can fail: training moved the weights away from their initial values.
    from train.model import build_model

    torch.manual_seed(0)
    init = build_model(tiny_config(ann, images, tmp_path / "c")).state_dict()
    key = "segmentation_head.0.weight"
    assert not torch.equal(init[key], straight.model.state_dict()[key])


def test_refuses_to_overwrite_a_run_and_resume_when_done(data, tmp_path):
    ann, images = data
    cfg = tiny_config(ann, images, tmp_path / "r")
    fit(cfg)
    from vbg import VbgError

    with pytest.raises(VbgError, match="--resume"):
        fit(cfg)
    again = fit(tiny_config(ann, images, tmp_path / "r", resume="last"))
    assert again.epochs_done == 1  # nothing left to do
    with pytest.raises(VbgError, match="cannot resume: the checkpoint's decoder_channels"):
        fit(
            tiny_config(
                ann, images, tmp_path / "r", resume="last", decoder_channels=(32, 16, 16, 8, 8)
            )
        )


def test_cli_flags_override_the_config_file(data, tmp_path, capsys):
    ann, images = data
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(
        "encoder: mobilenet_v2\nencoder_weights: none\ndecoder_channels: [16, 16, 8, 8, 8]\n"
        "height: 64\nwidth: 64\ncrop: [64, 64]\nepochs: 5\nbatch_size: 4\nworkers: 0\n"
        "empty_fraction: 1.0\n"
    )
    out = tmp_path / "cli"
    rc = main(
        ["fit", "--config", str(cfg_file), "--ann", str(ann), "--images", str(images),
         "--out", str(out), "--epochs", "1", "--size", "64x96", "--crop", "64x96"]
    )  # fmt: skip
    assert rc == 0
    saved = make_config(out / "config.yaml")
    assert (saved.epochs, saved.height, saved.width, saved.crop) == (1, 64, 96, (64, 96))
    assert saved.decoder_channels == (16, 16, 8, 8, 8)  # from the file
    assert "epoch 1/1" in capsys.readouterr().out

    # Resume without --config reuses the run's config; a bigger --epochs extends the run.
    rc = main(["fit", "--out", str(out), "--resume", "--epochs", "2"])
    assert rc == 0
    assert load_checkpoint(out / "last.pt")["epoch"] == 2


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochz: 3\n")
    assert main(["fit", "--config", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("train fit: error:") and "epochz" in err and "\n" not in err
    assert main(["fit", "--ann", str(tmp_path / "none.json"), "--images", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["fit", "--size", "64by96"]) == 1
    assert "HEIGHTxWIDTH" in capsys.readouterr().err


def test_fit_to_time_shortens_the_schedule_to_the_limit(data, tmp_path, monkeypatch):
    # A fake clock that advances with every reading, so epochs take a few fake seconds:
    # with a 1-minute limit only some of the 50 epochs fit, and the cosine must end (LR at
    # its floor) on the last of them, before the limit stops the run.
    import train.fit as fit_module

    clock = {"t": 0.0}

    def fake_perf_counter() -> float:
        clock["t"] += 0.2  # many calls per epoch; each costs 0.2 s of fake time
        return clock["t"]

    monkeypatch.setattr(fit_module.time, "perf_counter", fake_perf_counter)
    ann, images = data
    cfg = tiny_config(
        ann, images, tmp_path / "t", epochs=50, time_limit=1.0, fit_to_time=True, lr=1e-2
    )
    result = fit(cfg)
    assert 2 < result.epochs_done < 50
    assert not result.stopped_by_time_limit
    saved = yaml.safe_load((tmp_path / "t" / "config.yaml").read_text())
    assert saved["epochs"] == result.epochs_done
    last_lr = result.history[-1]["lr"]
    assert last_lr == pytest.approx(1e-2 * cfg.final_lr_ratio, rel=0.05)

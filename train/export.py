"""`python -m train export --run RUN --out DIR [--name NAME] [--fp16]`: a run's best
checkpoint as the files the runtime reads.

  DIR/NAME.onnx       fp32, opset 17, input "input" (1,3,H,W), output "logits" (1,1,H,W),
                      H and W dynamic (the card's area fit gives each frame its own size)
  DIR/NAME_fp16.onnx  only with --fp16: fp16 weights and compute, fp32 input/output (for
                      GPU runtimes; the CPU engines gain nothing from it)
  DIR/NAME.pt         the state dict, which the torch and TensorRT engines rebuild from
  DIR/NAME.json       the model card (vbg.card.ModelCard): architecture, encoder, decoder,
                      input spec, output logits + threshold, files + sha256, training data
                      and config summary, and the run's test metrics when
                      RUN/metrics_test.json exists (run `python -m train evaluate` first)

Then it loads the card and the ONNX file through the runtime (`create_engine("onnxruntime")`)
and checks that its masks equal PyTorch's on test images (IoU of the binarised full-frame
masks >= 0.99 on each); the numbers go to RUN/export_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from train.config import TrainConfig
from vbg import VbgError

if TYPE_CHECKING:
    import torch

    from vbg.card import ModelCard

OPSET = 17
MIN_IOU = 0.99


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, type=Path, help="run folder written by fit")
    p.add_argument("--out", required=True, type=Path, help="folder for the model files")
    p.add_argument("--name", help="file stem and card name (default: the run folder's name)")
    p.add_argument("--checkpoint", default="best", help="best | last | a checkpoint path")
    p.add_argument("--fp16", action="store_true", help="also write NAME_fp16.onnx (GPU runtimes)")
    p.add_argument(
        "--check-images", type=int, default=8, help="test images for the ONNX-vs-torch check"
    )
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the check")


def run(args: argparse.Namespace) -> int:
    result = export_run(
        args.run,
        args.out,
        name=args.name,
        checkpoint=args.checkpoint,
        fp16=args.fp16,
        check_images=args.check_images,
        threads=args.threads,
    )
    print(f"wrote {result['card']} ({', '.join(result['files'])})")
    c = result["check"]
    print(
        f"onnxruntime vs torch on {c['images']} {c['split']} image(s): mask IoU min "
        f"{c['iou_min']:.5f} mean {c['iou_mean']:.5f}; max |logit diff| {c['max_abs_logit_diff']:.2e}"
    )
    return 0


def export_onnx(
    model: torch.nn.Module, path: Path, height: int, width: int, channels: int = 3
) -> Path:
    """fp32 ONNX with dynamic H/W, checked with onnx.checker. channels: 4 for a prior model."""
    import onnx
    import torch

    model = model.eval().cpu()
    x = torch.zeros(1, channels, height, width)
    tmp = path.with_name(path.stem + ".tmp.onnx")
    torch.onnx.export(
        model,
        (x,),
        str(tmp),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {2: "height", 3: "width"}, "logits": {2: "height", 3: "width"}},
        opset_version=OPSET,
        dynamo=False,  # the TorchScript exporter: one self-contained file, stable names
    )
    onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
    os.replace(tmp, path)
    return path


def export_onnx_fp16(
    model: torch.nn.Module, path: Path, height: int, width: int, channels: int = 3
) -> Path:
    """fp16 weights and arithmetic inside, fp32 at the boundary (the runtime feeds fp32)."""
    import copy

    import torch

    class Half(torch.nn.Module):
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m(x.half()).float()

    return export_onnx(Half(copy.deepcopy(model).half()), path, height, width, channels)


def _training_summary(cfg: TrainConfig, run_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    import segmentation_models_pytorch as smp
    import torch

    sources: dict[str, int] = {}
    train_json = run_dir / "splits" / "train.json"
    if train_json.is_file():
        for im in json.loads(train_json.read_text()).get("images", []):
            s = str(im.get("source") or "unknown")
            sources[s] = sources.get(s, 0) + 1
    weights = cfg.encoder_weights
    if cfg.init_weights:
        weights = f"fine-tuned from {Path(cfg.init_weights).name}"
    elif weights not in ("imagenet", "none"):
        weights = f"ImageNet, local file {Path(weights).name}"
    return {
        "data": cfg.data_description or f"COCO-format person set {Path(cfg.ann).name}",
        "annotations": Path(cfg.ann).name,
        "split_sizes": info.get("split_sizes", {}),
        "train_images_per_source": sources,
        "split": "grouped (frames of one video on one side), seed "
        f"{cfg.seed}, fractions {list(cfg.split)}",
        "epochs": info["epoch"],  # epochs behind the exported weights
        "epochs_run": len(info.get("history", [])),
        "best_epoch": info["best_epoch"],
        "best_val_loss": info["best_val_loss"],
        "config": {
            "encoder_weights": weights,
            "crop": list(cfg.crop),
            "scale_range": list(cfg.scale_range),
            "copy_paste": cfg.copy_paste,
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "optimizer": f"AdamW lr {cfg.lr:g} weight_decay {cfg.weight_decay:g}",
            "schedule": f"cosine per step, warmup {cfg.warmup_epochs:g} epochs, final x{cfg.final_lr_ratio:g}",
            "loss": f"{cfg.bce_weight:g} BCE + {cfg.dice_weight:g} Dice"
            + (f" + {cfg.boundary_weight:g} boundary BCE" if cfg.boundary_weight else ""),
            "amp": cfg.amp,
            "empty_fraction": cfg.empty_fraction,
            "crowd": cfg.crowd,
            "max_images": cfg.max_images,
        },
        "framework": f"segmentation-models-pytorch {smp.__version__}, torch {torch.__version__}",
        "run": run_dir.name,
    }


def _test_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "metrics_test.json"
    if not path.is_file():
        return {}
    m = json.loads(path.read_text())
    keys = (
        "split",
        "images",
        "dice",
        "iou",
        "pixel_acc",
        "per_source",
        "tta",
        "threshold",
        "resolution",
    )
    out = {k: m[k] for k in keys if k in m}
    out["measured_by"] = "python -m train evaluate (runtime preprocessing, full-resolution masks)"
    return out


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str | None = None,
    checkpoint: str = "best",
    fp16: bool = False,
    check_images: int = 8,
    threads: int = 2,
) -> dict[str, Any]:
    """Writes the model files and card, then checks ONNX (via the runtime) against torch."""
    import torch

    from train.evaluate import load_trained_model
    from vbg.card import ModelCard, OutputSpec, sha256_of

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    name = name or run_dir.resolve().name
    if not name or any(c in name for c in "/\\"):
        raise VbgError(f"--name must be a plain file stem, not {name!r}")
    model, cfg, info = load_trained_model(run_dir, checkpoint, "cpu")
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = cfg.input_spec()

    files = {"onnx": f"{name}.onnx", "torch": f"{name}.pt"}
    export_onnx(model, out_dir / files["onnx"], spec.height, spec.width, spec.channels)
    if fp16:
        files["onnx_fp16"] = f"{name}_fp16.onnx"
        export_onnx_fp16(
            model, out_dir / files["onnx_fp16"], spec.height, spec.width, spec.channels
        )
    tmp = out_dir / f"{name}.pt.tmp"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, out_dir / files["torch"])

    card = ModelCard(
        name=name,
        architecture=cfg.architecture,
        encoder=cfg.encoder,
        decoder_channels=tuple(cfg.decoder_channels),
        input=spec,
        output=OutputSpec(kind="logits", channels=1, threshold=0.5),
        files=files,
        sha256={f: sha256_of(out_dir / f) for f in files.values()},
        training=_training_summary(cfg, run_dir, info),
        metrics=_test_metrics(run_dir),
    )
    card_path = card.save(out_dir / f"{name}.json")
    check = check_onnx_matches_torch(
        card_path, model, run_dir, cfg, n=check_images, threads=threads
    )
    tmp = run_dir / "export_check.json.tmp"
    tmp.write_text(json.dumps({"card": str(card_path), **check}, indent=1) + "\n")
    os.replace(tmp, run_dir / "export_check.json")
    if check["iou_min"] < MIN_IOU:
        raise VbgError(
            f"the exported ONNX model disagrees with PyTorch: mask IoU {check['iou_min']:.4f} "
            f"< {MIN_IOU} on image {check['worst']} (details in {run_dir / 'export_check.json'})"
        )
    return {"card": str(card_path), "files": list(files.values()), "check": check}


def check_onnx_matches_torch(
    card_path: Path,
    model: torch.nn.Module,
    run_dir: Path,
    cfg: TrainConfig,
    *,
    n: int = 8,
    threads: int = 2,
) -> dict[str, Any]:
    """Loads the card and its ONNX file as the runtime does and compares full-frame masks
    with PyTorch's on up to n test images (val images when the test split is empty)."""
    import torch

    from train.data import load_coco, load_image
    from train.evaluate import grid_ids, predict_prob
    from vbg.card import load_card
    from vbg.engines import create_engine
    from vbg.metrics import image_metrics
    from vbg.refine import prob_to_frame
    from vbg.segmenter import preprocess, sigmoid_, with_unknown_prior

    card: ModelCard = load_card(card_path)
    split = "test"
    coco = load_coco(run_dir / "splits" / "test.json")
    if not coco.imgs:
        split = "val"
        coco = load_coco(run_dir / "splits" / "val.json")
    ids = grid_ids(coco, sorted(coco.imgs), n)
    engine = create_engine("onnxruntime", card, threads=threads)
    rows = []
    try:
        for img_id in ids:
            meta = coco.imgs[img_id]
            frame = load_image(Path(cfg.images) / meta["file_name"])
            x = with_unknown_prior(preprocess(frame, card.input), card.input)
            logits_onnx = np.asarray(engine.run(x), dtype=np.float32)
            with torch.inference_mode():
                logits_torch = model(torch.from_numpy(x)).float().numpy()
            p_onnx = prob_to_frame(sigmoid_(logits_onnx[0, 0].copy()), frame.shape[:2])
            p_torch = prob_to_frame(predict_prob(model, x), frame.shape[:2])
            m = image_metrics(p_onnx >= 0.5, p_torch >= 0.5)
            rows.append(
                {
                    "id": int(img_id),
                    "input": list(x.shape[2:]),
                    "iou": m["iou"],
                    "max_abs_logit_diff": float(np.max(np.abs(logits_onnx - logits_torch))),
                }
            )
    finally:
        engine.close()
    if not rows:
        raise VbgError(f"no {split} images in {run_dir / 'splits'} to check the export on")
    worst = min(rows, key=lambda r: r["iou"])
    return {
        "split": split,
        "images": len(rows),
        "iou_min": worst["iou"],
        "iou_mean": float(np.mean([r["iou"] for r in rows])),
        "max_abs_logit_diff": max(r["max_abs_logit_diff"] for r in rows),
        "worst": worst["id"],
        "engine": engine.name,
        "per_image": rows,
    }

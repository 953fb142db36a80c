"""`python -m train evaluate --run RUN [--split test] [--tta]`: a run's model on one of its
splits, measured the way the runtime will run it.

Each image goes through the runtime's own preprocessing (`vbg.segmenter.preprocess`, from
the model card's input spec), the network, a sigmoid, and the runtime's upsampling to the
ORIGINAL image size (`vbg.refine.prob_to_frame`); the mask is probability >= 0.5. Dice, IoU
and pixel accuracy (`vbg.metrics`) are computed per image at full resolution against the
union of the image's person annotations (crowd regions count as person, as in `vbg eval`)
and averaged per image, overall and per source.

Writes RUN/metrics_<split>.json and RUN/comparison.png (original | ground truth |
prediction | composite on a background, for 12 images spread over the sources).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from train.config import TrainConfig, make_config
from vbg import VbgError

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parent.parent
GRID_IMAGES = 12
CELL = (192, 256)  # (h, w) of one tile in the comparison grid


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, type=Path, help="run folder written by fit")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument(
        "--checkpoint", default="best", help="best | last | a checkpoint path (default: best)"
    )
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    p.add_argument("--images", help="image root, when the data moved since training")
    p.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--max-images", type=int, default=0, help="evaluate only the first N (0 = all)")
    p.add_argument("--no-grid", action="store_true", help="skip comparison.png")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = evaluate_run(
        args.run,
        split=args.split,
        checkpoint=args.checkpoint,
        tta=args.tta,
        images=args.images,
        device=args.device,
        max_images=args.max_images,
        grid=not args.no_grid,
    )
    print(format_table(result))
    print(f"wrote {result['json']}" + (f" and {result['grid']}" if result.get("grid") else ""))
    return 0


# ----------------------------------------------------------------------------- loading


def run_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise VbgError(f"{run_dir} is not a run folder (no config.yaml)")
    return make_config(path)


def checkpoint_path(run_dir: Path, which: str) -> Path:
    if which in ("best", "last"):
        return Path(run_dir) / f"{which}.pt"
    return Path(which)


def load_trained_model(
    run_dir: Path, which: str = "best", device: str = "cpu"
) -> tuple[torch.nn.Module, TrainConfig, dict[str, Any]]:
    """(model in eval mode, the run's config, checkpoint summary) from a run folder."""
    from train.fit import load_checkpoint
    from train.model import build_model

    cfg = run_config(run_dir)
    path = checkpoint_path(run_dir, which)
    ckpt = load_checkpoint(path)
    model = build_model(cfg, load_weights=False)
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    info = {
        "checkpoint": str(path),
        "epoch": int(ckpt["epoch"]),
        "best_epoch": int(ckpt.get("best_epoch", 0)),
        "best_val_loss": float(ckpt.get("best_val_loss", float("nan"))),
        "split_sizes": ckpt.get("split_sizes", {}),
        "history": ckpt.get("history", []),
    }
    return model, cfg, info


def predict_prob(
    model: torch.nn.Module, x: np.ndarray, *, tta: bool = False, device: str = "cpu"
) -> np.ndarray:
    """Person probability (h, w) float32 at model resolution for a preprocessed (1,3,h,w)
    input; with tta, the mean of the image's and its mirror image's probabilities."""
    import torch

    with torch.inference_mode():
        t = torch.from_numpy(x).to(device)
        prob = torch.sigmoid(model(t).float())
        if tta:
            flipped = torch.sigmoid(model(torch.flip(t, dims=[3])).float())
            prob = 0.5 * (prob + torch.flip(flipped, dims=[3]))
    return prob[0, 0].cpu().numpy().astype(np.float32)


# ----------------------------------------------------------------------------- evaluation


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    checkpoint: str = "best",
    tta: bool = False,
    images: str | None = None,
    device: str = "cpu",
    max_images: int = 0,
    grid: bool = True,
) -> dict[str, Any]:
    """Evaluates and writes RUN/metrics_<split>.json (+ comparison.png); returns the result."""
    from tqdm import tqdm

    from train.data import load_coco, load_image, person_mask
    from vbg.metrics import image_metrics, mean_metrics
    from vbg.refine import prob_to_frame
    from vbg.segmenter import preprocess

    run_dir = Path(run_dir)
    model, cfg, info = load_trained_model(run_dir, checkpoint, device)
    ann = run_dir / "splits" / f"{split}.json"
    if not ann.is_file():
        raise VbgError(f"{ann} does not exist (was the run made by `python -m train fit`?)")
    coco = load_coco(ann)
    root = Path(images or cfg.images)
    ids = sorted(coco.imgs)
    if max_images > 0:
        ids = ids[:max_images]
    if not ids:
        raise VbgError(f"the {split} split of {run_dir} holds no images")
    spec = cfg.input_spec()

    rows: list[dict[str, Any]] = []
    shown = set(grid_ids(coco, ids)) if grid else set()
    tiles: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    t0 = time.perf_counter()
    for img_id in tqdm(ids, desc=f"evaluate {split}", leave=False, dynamic_ncols=True):
        meta = coco.imgs[img_id]
        frame = load_image(root / meta["file_name"])
        person, crowd = person_mask(coco, img_id)
        true = (person | crowd) > 0
        if frame.shape[:2] != true.shape:
            raise VbgError(f"{meta['file_name']}: image size differs from its annotation")
        prob_small = predict_prob(model, preprocess(frame, spec), tta=tta, device=device)
        prob = prob_to_frame(prob_small, frame.shape[:2])
        pred = prob >= 0.5
        m = image_metrics(pred, true)
        rows.append(
            {"id": int(img_id), "file_name": meta["file_name"], "source": meta.get("source"), **m}
        )
        if img_id in shown:
            tiles[img_id] = (frame, true, pred, prob)
    seconds = time.perf_counter() - t0

    overall = mean_metrics(rows)
    per_source: dict[str, Any] = {}
    for src in sorted({r["source"] for r in rows if r["source"]}):
        per_source[src] = mean_metrics(r for r in rows if r["source"] == src)
    result: dict[str, Any] = {
        "split": split,
        "ann": str(ann),
        "checkpoint": info["checkpoint"],
        "epoch": info["epoch"],
        "tta": tta,
        "input": {"height": spec.height, "width": spec.width, "fit": spec.fit},
        "threshold": 0.5,
        "resolution": "original image size (prob_to_frame)",
        **overall,
        "per_source": per_source,
        "seconds": round(seconds, 2),
        "per_image": rows,
    }
    out_json = run_dir / f"metrics_{split}.json"
    tmp = out_json.with_name(out_json.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, out_json)
    result["json"] = str(out_json)
    if tiles:
        order = [i for i in grid_ids(coco, ids) if i in tiles]
        path = run_dir / "comparison.png"
        write_grid([tiles[i] for i in order], [_label(coco, i, rows) for i in order], path)
        result["grid"] = str(path)
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'':12s} {'images':>7s} {'dice':>7s} {'iou':>7s} {'acc':>7s}"]

    def line(name: str, m: dict[str, Any]) -> str:
        return f"{name:12s} {m['images']:7d} {m['dice']:7.4f} {m['iou']:7.4f} {m['pixel_acc']:7.4f}"

    lines.append(line(f"{result['split']} (all)", result))
    for src, m in result["per_source"].items():
        lines.append(line(f"  {src}", m))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- grid


def grid_ids(coco: Any, ids: list[int], n: int = GRID_IMAGES) -> list[int]:
    """n images spread over the sources (round robin), evenly spaced within each."""
    by_src: dict[str, list[int]] = {}
    for i in sorted(ids):
        by_src.setdefault(str(coco.imgs[i].get("source") or ""), []).append(i)
    queues = {}
    for src, lst in sorted(by_src.items()):
        k = min(n, len(lst))
        queues[src] = [lst[int(j * len(lst) / k)] for j in range(k)]
    out: list[int] = []
    while len(out) < n and any(queues.values()):
        for src in sorted(queues):
            if queues[src] and len(out) < n:
                out.append(queues[src].pop(0))
    return out


def _label(coco: Any, img_id: int, rows: list[dict[str, Any]]) -> str:
    r = next(r for r in rows if r["id"] == img_id)
    src = coco.imgs[img_id].get("source") or Path(coco.imgs[img_id]["file_name"]).parent.name
    return f"{src} #{img_id}  IoU {r['iou']:.3f}"


def background_image() -> np.ndarray | None:
    """A bundled background (assets/backgrounds), or None for a plain colour."""
    folder = REPO / "assets" / "backgrounds"
    for p in sorted(folder.glob("*.jpg")) if folder.is_dir() else []:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is not None:
            return img
    return None


def _cover(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Scale to cover h x w, centre-crop (never stretch)."""
    s = max(h / img.shape[0], w / img.shape[1])
    nh, nw = max(h, round(img.shape[0] * s)), max(w, round(img.shape[1] * s))
    big = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y, x = (nh - h) // 2, (nw - w) // 2
    return big[y : y + h, x : x + w]


def _fit_cell(img: np.ndarray) -> np.ndarray:
    """Letterbox into one grid cell."""
    ch, cw = CELL
    s = min(ch / img.shape[0], cw / img.shape[1])
    h, w = max(1, round(img.shape[0] * s)), max(1, round(img.shape[1] * s))
    cell = np.full((ch, cw, 3), 32, np.uint8)
    y, x = (ch - h) // 2, (cw - w) // 2
    cell[y : y + h, x : x + w] = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return cell


def write_grid(
    tiles: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    labels: list[str],
    path: Path,
) -> None:
    """Rows of original | ground truth | prediction | composite, with a header."""
    bg = background_image()
    heads = ("original", "ground truth", "prediction", "composite")
    rows = []
    ch, cw = CELL
    header = np.full((28, cw * 4, 3), 255, np.uint8)
    for j, t in enumerate(heads):
        cv2.putText(
            header, t, (j * cw + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA
        )
    rows.append(header)
    for (frame, true, pred, prob), label in zip(tiles, labels, strict=True):
        h, w = frame.shape[:2]
        back = _cover(bg, h, w) if bg is not None else np.full_like(frame, (60, 160, 60))
        a = prob[..., None]
        comp = (frame.astype(np.float32) * a + back.astype(np.float32) * (1 - a) + 0.5).astype(
            np.uint8
        )
        gt = np.repeat((true.astype(np.uint8) * 255)[..., None], 3, axis=2)
        # Prediction: white = person; errors coloured (red = missed person, blue = extra).
        pr = np.repeat((pred.astype(np.uint8) * 255)[..., None], 3, axis=2)
        pr[true & ~pred] = (0, 0, 255)
        pr[pred & ~true] = (255, 96, 0)
        cells = [_fit_cell(x) for x in (frame, gt, pr, comp)]
        strip = np.full((20, cw * 4, 3), 255, np.uint8)
        cv2.putText(
            strip, label, (6, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
        )
        rows.append(strip)
        rows.append(np.concatenate(cells, axis=1))
    img = np.concatenate(rows, axis=0)
    tmp = path.with_name(path.stem + ".tmp.png")
    if not cv2.imwrite(str(tmp), img):
        raise VbgError(f"cannot write {path}")
    os.replace(tmp, path)

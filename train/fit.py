"""`python -m train fit`: train the U-Net on a COCO person set.

One run folder holds everything a run produces:
  config.yaml              the resolved config (defaults <- --config <- flags)
  splits/{train,val,test}.json   COCO subsets (`vbg eval --ann RUN/splits/test.json` reads them)
  splits/ids.json          the split's image ids (a resumed run reuses them as they were)
  last.pt, best.pt         checkpoints (best by validation loss), written atomically
  log.csv, log.json        one row per epoch; curves.png

Resuming (`--resume`) restores model, optimizer, scheduler, GradScaler, epoch, step and
RNG states, and every epoch's shuffling and augmentation are seeded from (seed, epoch,
rank), so a run stopped after epoch k and resumed ends with the same weights as one that
never stopped (tested). A crash loses at most the epoch in progress.

Under torchrun (RANK/WORLD_SIZE set) it trains with DistributedDataParallel: nccl on GPUs,
gloo on CPUs, a DistributedSampler per epoch, and only rank 0 validates, logs and saves.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import math
import os
import pickle
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from train.config import TrainConfig, make_config, parse_size, save_config
from train.prior import PriorSynthesis, with_prior
from vbg import VbgError

if TYPE_CHECKING:
    import torch

CHECKPOINT_FORMAT = "vbg-train-checkpoint/1"
PRIOR_VAL_SEED = 20261203  # a prior model's validation priors: the same every epoch


# ----------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML config (keys = TrainConfig fields)")
    p.add_argument("--ann", help="COCO instances JSON")
    p.add_argument("--images", help="image root the JSON's file names are relative to")
    p.add_argument("--out", help="run folder (config, splits, logs, checkpoints)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--encoder", help="smp encoder name, e.g. resnet34, mobilenet_v2")
    p.add_argument(
        "--encoder-weights", help="'imagenet' (download), a local torchvision .pth, or 'none'"
    )
    p.add_argument("--size", help="model input HEIGHTxWIDTH, e.g. 160x288 (goes into the card)")
    p.add_argument("--crop", help="training crop HEIGHTxWIDTH (multiples of 32)")
    p.add_argument("--batch-size", type=int, help="per process under torchrun")
    p.add_argument("--lr", type=float)
    p.add_argument("--workers", type=int, help="DataLoader worker processes")
    p.add_argument("--max-images", type=int, help="cap on images used (0 = all)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--amp", help="auto | off | fp16 | bf16")
    p.add_argument(
        "--time-limit",
        type=float,
        metavar="MIN",
        help="stop after the epoch that crosses MIN minutes",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="last",
        help="continue from OUT/last.pt (or the checkpoint given); without --config the "
        "run's own config.yaml is reused",
    )


def _start_weights(cfg: TrainConfig, ckpt: dict[str, Any] | None) -> str:
    if ckpt is not None:
        return "from checkpoint"
    return f"fine-tuning {cfg.init_weights}" if cfg.init_weights else cfg.encoder_weights


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides: dict[str, Any] = {
        "ann": args.ann,
        "images": args.images,
        "out": args.out,
        "epochs": args.epochs,
        "encoder": args.encoder,
        "encoder_weights": args.encoder_weights,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "workers": args.workers,
        "max_images": args.max_images,
        "seed": args.seed,
        "device": args.device,
        "amp": args.amp,
        "time_limit": args.time_limit,
        "resume": args.resume,
    }
    if args.size:
        overrides["height"], overrides["width"] = parse_size(args.size)
    if args.crop:
        overrides["crop"] = parse_size(args.crop)
    yaml_path = args.config
    if yaml_path is None and args.resume:
        # Resuming a run: its own resolved config is the base, flags still override.
        run_dir = Path(args.out) if args.out else None
        if run_dir is None and args.resume != "last":
            run_dir = Path(args.resume).parent
        if run_dir is not None and (run_dir / "config.yaml").is_file():
            yaml_path = run_dir / "config.yaml"
    return make_config(yaml_path, overrides)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    fit(cfg)
    return 0


# ----------------------------------------------------------------------------- plumbing


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    """Joins the process group when launched by torchrun (RANK/WORLD_SIZE in the env)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return DistInfo()
    if dist.is_initialized():
        return DistInfo(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
        )
    backend = "nccl" if device_kind == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return DistInfo(
        dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True
    )


def resolve_device(cfg: TrainConfig, dist_info: DistInfo | None = None) -> torch.device:
    import torch

    want = cfg.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise VbgError(f"device {cfg.device!r} asked for, but torch sees no CUDA GPU")
        if want == "cuda":
            # Always an indexed device: torch.cuda.set_device and DDP's device_ids need the
            # index. One GPU per process under torchrun (LOCAL_RANK), else the first.
            want = f"cuda:{dist_info.local_rank if dist_info is not None else 0}"
    elif want != "cpu":
        raise VbgError(f"device must be auto, cpu, cuda or cuda:N, not {cfg.device!r}")
    try:
        return torch.device(want)
    except RuntimeError as e:
        raise VbgError(f"device must be auto, cpu, cuda or cuda:N, not {cfg.device!r}") from e


def amp_setup(cfg: TrainConfig, device: torch.device) -> tuple[Callable[[], Any], Any, str]:
    """(autocast context factory, GradScaler, mode). A null context and a disabled scaler
    when off, so the training step has no device branches."""
    import torch

    mode = cfg.amp
    if mode == "auto":
        mode = "fp16" if device.type == "cuda" else "off"
    if mode == "fp16" and device.type != "cuda":
        raise VbgError("amp fp16 needs CUDA; on the CPU use amp bf16 or off")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mode)
    if dtype is None:
        ctx: Callable[[], Any] = contextlib.nullcontext
    else:

        def ctx() -> Any:
            return torch.autocast(device_type=device.type, dtype=dtype)

    # Only fp16 needs loss scaling: bf16 has fp32's exponent range.
    scaler = torch.amp.GradScaler(device.type, enabled=(mode == "fp16"))
    return ctx, scaler, mode


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """One seed per (run seed, epoch, rank): an epoch's shuffle and augmentation depend on
    nothing else, which is what makes a resumed run identical to an uninterrupted one."""
    return (seed * 1_000_003 + epoch * 1_009 + rank) % (2**31)


def seed_data_rngs(dataset: Any, seed: int, *, torch_too: bool = False) -> None:
    """Seeds everything data loading draws from in this process: python, numpy and the
    transform's own generators (albumentations 2 keeps its own, per Compose). Worker
    processes already have torch seeded by the DataLoader (from the loader's generator,
    re-seeded every epoch); the main process (workers=0) passes torch_too."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    if torch_too:
        import torch

        # TrainTransform draws each sample's seed from torch's global RNG.
        torch.manual_seed(seed)
    transform = getattr(dataset, "transform", None)
    if transform is not None and hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


def _seed_worker(worker_id: int) -> None:
    import torch

    # torch seeds each worker from the loader's generator (re-seeded every epoch) + worker id.
    info = torch.utils.data.get_worker_info()
    seed_data_rngs(info.dataset, torch.initial_seed() % (2**31))


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def previous_path(path: Path) -> Path:
    """last.pt -> last.prev.pt: the checkpoint before, kept for when the newest is damaged."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_atomic(obj: Any, path: Path, *, keep_previous: bool = False) -> None:
    """torch.save to a temporary file in the same folder, then rename: a crash mid-write
    leaves the previous checkpoint intact, never a truncated one. A SHA-256 sidecar
    (``path.sha256``) lets a later load tell flipped bytes from a good file; with
    keep_previous the checkpoint being replaced stays as ``<stem>.prev.pt``."""
    import torch

    from vbg.card import sha256_of

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    digest = sha256_of(tmp)
    if keep_previous and path.exists():
        os.replace(path, previous_path(path))
        if checksum_path(path).exists():
            os.replace(checksum_path(path), checksum_path(previous_path(path)))
    os.replace(tmp, path)
    sidecar_tmp = checksum_path(path).with_suffix(".tmp")
    sidecar_tmp.write_text(digest + "\n")
    os.replace(sidecar_tmp, checksum_path(path))


def load_checkpoint_or_previous(path: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """load_checkpoint, falling back to the previous good checkpoint (with a message) when
    the newest one is corrupt."""
    try:
        return load_checkpoint(path)
    except VbgError as e:
        prev = previous_path(path)
        if not prev.is_file():
            raise
        ckpt = load_checkpoint(prev)
        say(f"{e}; resuming from the previous checkpoint {prev} (epoch {ckpt.get('epoch')})")
        return ckpt


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint written by fit. It holds RNG states (python tuples, numpy arrays), so
    it is loaded with weights_only=False: load only checkpoints you made."""
    import torch

    from vbg.card import sha256_of

    path = Path(path)
    if not path.is_file():
        raise VbgError(f"checkpoint {path} does not exist")
    sidecar = checksum_path(path)
    if sidecar.is_file() and sidecar.read_text().strip() != sha256_of(path):
        raise VbgError(f"checkpoint {path} is corrupt (its SHA-256 does not match {sidecar.name})")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        raise VbgError(f"cannot read checkpoint {path}: {e}".splitlines()[0]) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise VbgError(f"{path} is not a train checkpoint ({CHECKPOINT_FORMAT})")
    return ckpt


def cosine_lambda(
    total_steps: int, warmup_steps: int, final_ratio: float
) -> Callable[[int], float]:
    """LR factor per optimizer step: linear warmup, then cosine from 1 down to final_ratio."""

    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        t = min(1.0, (step - warmup_steps) / span)
        return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))

    return f


def shorten_to_time_limit(
    cfg: TrainConfig,
    epoch: int,
    t_mark: float,
    t_start: float,
    dist_info: DistInfo,
    device: torch.device,
) -> TrainConfig:
    """Before epoch 5, cut `epochs` to what fits in the time limit.

    Why: a time limit alone stops mid-schedule with the learning rate still high; with a
    shorter run the cosine anneals fully inside the budget (a GPU lease, a CPU sitting).
    Epochs 3 and 4 (one of them validated when val_every is 2) set the pace: the first two
    carry one-off costs (CUDA start, cuDNN autotuning per input size) that measured 10x an
    ordinary epoch on an H200. 5% is kept in reserve for the last validation and checkpoint.
    """
    now = time.perf_counter()
    per_epoch = (now - t_mark) / 2
    left = cfg.time_limit * 60 * 0.95 - (now - t_start)
    fits = epoch + max(0, int(left // per_epoch))
    if dist_info.enabled:  # every rank must run the same number of epochs
        t = torch.tensor([fits], device=device)
        torch.distributed.broadcast(t, src=0)
        fits = int(t.item())
    if fits >= cfg.epochs:
        return cfg
    if dist_info.main:
        print(
            f"fit_to_time: {per_epoch:.1f} s/epoch, so {fits} of {cfg.epochs} epochs fit in "
            f"{cfg.time_limit:g} min; the cosine schedule now ends at epoch {fits}",
            flush=True,
        )
    return dataclasses.replace(cfg, epochs=fits)


# ----------------------------------------------------------------------------- data


def prepare_splits(
    cfg: TrainConfig, run_dir: Path, *, write: bool, reuse: bool
) -> tuple[Any, dict]:
    """(pycocotools COCO, {"train"|"val"|"test": ids}). The selection (empty-image fraction,
    max_images) and the grouped split are seeded; a resumed run reads its saved ids instead,
    so a change in the code or data cannot move images between sides mid-run."""
    from train.data import load_coco, note_skipped, select_ids, unusable_annotations
    from train.split import SPLITS, grouped_split, write_split_coco

    if not cfg.ann or not cfg.images:
        raise VbgError(
            "fit needs the data: give --ann ANN.json and --images ROOT (or set them in --config)"
        )
    coco = load_coco(cfg.ann)
    ids_file = run_dir / "splits" / "ids.json"
    if reuse and ids_file.is_file():
        splits = {k: [int(i) for i in v] for k, v in json.loads(ids_file.read_text()).items()}
        return coco, splits
    skipped = unusable_annotations(coco, list(coco.imgs))
    if skipped:
        note_skipped(skipped)
        shown = ", ".join(str(i) for i in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        print(
            f"train: skipping {len(skipped)} person annotation{'s' if len(skipped) != 1 else ''} "
            f"that do not decode (ids {shown}; `python -m train check` says why)"
        )
    ids = select_ids(
        coco,
        None,
        empty_fraction=cfg.empty_fraction,
        max_images=cfg.max_images or None,
        seed=cfg.seed,
    )
    splits = grouped_split([coco.imgs[i] for i in ids], seed=cfg.seed, fractions=tuple(cfg.split))
    for name in ("train", "val"):
        if not splits[name]:
            raise VbgError(
                f"the {name} split is empty ({len(ids)} images selected); use more images or groups"
            )
    if write:
        (run_dir / "splits").mkdir(parents=True, exist_ok=True)
        for name in SPLITS:
            write_split_coco(coco.dataset, splits[name], run_dir / "splits" / f"{name}.json")
        tmp = ids_file.with_name(ids_file.name + ".tmp")
        tmp.write_text(json.dumps(splits))
        os.replace(tmp, ids_file)
    return coco, splits


def val_subset(ids: list[int], n: int) -> list[int]:
    """At most n of the (sorted) validation ids, evenly spaced, so every source keeps its
    share; n = 0 keeps them all. For quick runs on slow machines."""
    if n <= 0 or len(ids) <= n:
        return ids
    step = math.ceil(len(ids) / n)
    return ids[::step]


# ----------------------------------------------------------------------------- steps


def _to_device(batch: dict[str, Any], device: torch.device) -> tuple[Any, Any, Any]:
    nb = device.type == "cuda"
    return (
        batch["image"].to(device, non_blocking=nb),
        batch["mask"].to(device, non_blocking=nb),
        batch["ignore"].to(device, non_blocking=nb),
    )


def train_one_epoch(
    model: torch.nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    loss_fn: Callable[..., dict[str, torch.Tensor]],
    device: torch.device,
    *,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    grad_clip: float = 0.0,
    desc: str = "train",
    show: bool = True,
    dist_info: DistInfo | None = None,
    prior: PriorSynthesis | None = None,
) -> tuple[dict[str, float], int]:
    """One pass over `loader`; returns (per-sample mean of each loss term, steps taken).
    prior: a prior model's previous-frame channel, synthesised from each batch's targets."""
    import torch
    from tqdm import tqdm

    model.train()
    sums: dict[str, torch.Tensor] = {}
    count = torch.zeros((), device=device)
    steps = 0
    bar = tqdm(loader, desc=desc, disable=not show, leave=False, dynamic_ncols=True)
    for batch in bar:
        x, y, ign = _to_device(batch, device)
        if prior is not None:
            x = with_prior(x, y, prior)
        with autocast():
            logits = model(x)
        # fp32 inside, whatever autocast produced; a distilling loss also takes the input.
        if getattr(loss_fn, "takes_input", False):
            losses = loss_fn(logits, y, ign, x)
        else:
            losses = loss_fn(logits, y, ign)
        # A sync point per step, but a NaN must stop the run before it reaches the weights
        # (and the checkpoints written at the end of the epoch).
        if not bool(torch.isfinite(losses["total"].detach())):
            raise VbgError(
                f"{desc}: the loss became {float(losses['total']):g} at step {steps + 1}; "
                "stopping (the last checkpoint is the last good one; try a lower --lr)"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["total"]).backward()
        if grad_clip > 0:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()  # per step: the cosine is over all steps of the run
        steps += 1
        n = x.shape[0]
        for k, v in losses.items():
            sums[k] = sums.get(k, torch.zeros((), device=device)) + v.detach() * n
        count += n
        if show and steps % 10 == 0:
            # .item() is a CPU-GPU sync point: only every few steps, for the progress bar.
            bar.set_postfix(loss=f"{(sums['total'] / count).item():.4f}")
    keys = sorted(sums)
    vec = torch.stack([sums[k] for k in keys] + [count])
    if dist_info is not None and dist_info.enabled:
        import torch.distributed as dist

        dist.all_reduce(vec)  # every rank's samples in the logged mean
    total = vec[-1].clamp(min=1)
    return {k: float(vec[i] / total) for i, k in enumerate(keys)}, steps


def evaluate_loss(
    model: torch.nn.Module,
    loader: Any,
    loss_fn: Callable[..., dict[str, torch.Tensor]],
    device: torch.device,
    *,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    desc: str = "val",
    show: bool = True,
    prior: PriorSynthesis | None = None,
) -> dict[str, float]:
    """Loss terms and Dice/IoU/pixel accuracy, each averaged per image, at model
    resolution (the logits' size). Ignored pixels count as correct for the metrics.
    prior: synthesised with a fixed seed, so epochs are compared on the same priors."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from vbg.metrics import image_metrics, mean_metrics

    model.eval()
    sums: dict[str, float] = {}
    rows = []
    gen = torch.Generator().manual_seed(PRIOR_VAL_SEED)
    with torch.inference_mode():
        for batch in tqdm(loader, desc=desc, disable=not show, leave=False, dynamic_ncols=True):
            x, y, ign = _to_device(batch, device)
            if prior is not None:
                x = with_prior(x, y, prior, gen)
            with autocast():
                logits = model(x)
            for i in range(x.shape[0]):
                losses = loss_fn(logits[i : i + 1], y[i : i + 1], ign[i : i + 1])
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                pred = (logits[i, 0] > 0).cpu().numpy()  # logit > 0 <=> probability > 0.5
                true = y[i, 0].cpu().numpy() > 0.5
                skip = ign[i, 0].cpu().numpy() > 0.5
                pred = np.where(skip, true, pred)
                rows.append(image_metrics(pred, true))
    n = max(1, len(rows))
    out = {f"loss_{k}" if k != "total" else "loss": v / n for k, v in sums.items()}
    m = mean_metrics(rows)
    out.update(dice=m["dice"], iou=m["iou"], pixel_acc=m["pixel_acc"])
    return out


# ----------------------------------------------------------------------------- logging


def write_logs(history: list[dict[str, Any]], run_dir: Path) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    tmp = run_dir / "log.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for row in history:
            w.writerow(row)
    os.replace(tmp, run_dir / "log.csv")
    tmp = run_dir / "log.json.tmp"
    tmp.write_text(json.dumps(history, indent=1) + "\n")
    os.replace(tmp, run_dir / "log.json")


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss, validation Dice/IoU and learning rate per epoch, one PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ep = [r["epoch"] for r in history]
    val = [r for r in history if r.get("val_loss") is not None]
    fig = Figure(figsize=(12, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 3, 1)
    ax.plot(ep, [r["train_loss"] for r in history], "o-", label="train")
    ax.plot([r["epoch"] for r in val], [r["val_loss"] for r in val], "s-", label="val")
    ax.set(title="loss (BCE + Dice)", xlabel="epoch")
    ax.legend()
    ax = fig.add_subplot(1, 3, 2)
    for key in ("val_dice", "val_iou"):
        ax.plot([r["epoch"] for r in val], [r[key] for r in val], "o-", label=key[4:])
    ax.set(title="validation (model resolution)", xlabel="epoch")
    ax.legend()
    ax = fig.add_subplot(1, 3, 3)
    ax.plot(ep, [r["lr"] for r in history], "o-")
    ax.set(title="learning rate (end of epoch)", xlabel="epoch")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- fit


@dataclass
class FitResult:
    run_dir: Path
    epochs_done: int
    best_epoch: int
    best_val_loss: float
    stopped_by_time_limit: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    model: Any = None  # the trained module (unwrapped from DDP), on its device


def fit(cfg: TrainConfig) -> FitResult:
    """Trains per `cfg`; see the module docstring for what lands in the run folder."""
    import torch

    t_start = time.perf_counter()
    device_kind = (
        "cuda"
        if cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    dist_info = init_distributed(device_kind)
    # Process-wide switches are put back afterwards: fit() is also called from tests and
    # notebooks, where they would leak into whatever runs next.
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_benchmark = torch.backends.cudnn.benchmark
    try:
        return _fit(cfg, dist_info, t_start)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.backends.cudnn.benchmark = was_benchmark
        if dist_info.initialized_here:
            import torch.distributed as dist

            dist.destroy_process_group()


def _data_paths(cfg: TrainConfig) -> dict[str, str]:
    return {k: getattr(cfg, k) for k in ("ann", "images", "mix", "teacher") if getattr(cfg, k)}


def _fit(cfg: TrainConfig, dist_info: DistInfo, t_start: float) -> FitResult:
    import torch
    from torch.utils.data import DataLoader, RandomSampler
    from torch.utils.data.distributed import DistributedSampler

    from train.data import CocoPersonDataset
    from train.losses import loss_from_config
    from train.model import build_model
    from train.transforms import get_transform

    device = resolve_device(cfg, dist_info)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    run_dir = Path(cfg.out)
    main = dist_info.main
    say = print if main else (lambda *a, **k: None)

    if cfg.deterministic:
        if device.type == "cuda":
            # cuBLAS needs this for repeatable matmuls; some CUDA kernels (nearest-upsample
            # backward) have no deterministic version, so on CUDA they only warn.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: autotuning pays off

    # --- checkpoint to resume from --------------------------------------------------
    ckpt = None
    if cfg.resume:
        path = run_dir / "last.pt" if cfg.resume == "last" else Path(cfg.resume)
        ckpt = load_checkpoint_or_previous(path, say)
        say(f"resuming from {path} (epoch {ckpt['epoch']} done, step {ckpt['global_step']})")
    elif (run_dir / "last.pt").exists():
        raise VbgError(
            f"{run_dir} already holds a run (last.pt); continue it with --resume or pick another --out"
        )
    # The run's config names the data by absolute path, so evaluate/export work from any
    # folder (relative paths in a config file are relative to where fit is started).
    cfg = dataclasses.replace(
        cfg, **{k: str(Path(v).expanduser().resolve()) for k, v in _data_paths(cfg).items()}
    )

    # --- data -------------------------------------------------------------------------
    coco, splits = prepare_splits(cfg, run_dir, write=main and ckpt is None, reuse=ckpt is not None)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    if dist_info.enabled:
        torch.distributed.barrier()  # rank 0 has written the splits
    train_ds = CocoPersonDataset(
        coco, cfg.images, splits["train"], get_transform(True, cfg), crowd=cfg.crowd, seed=cfg.seed
    )
    val_ds = CocoPersonDataset(
        coco,
        cfg.images,
        val_subset(splits["val"], cfg.val_max_images),
        get_transform(False, cfg),
        crowd=cfg.crowd,
        seed=cfg.seed,
    )
    say(
        f"data: {len(train_ds)} train / {len(val_ds)} val / {len(splits['test'])} test images "
        f"({cfg.ann}); run folder {run_dir}"
    )

    per_rank = len(train_ds) // dist_info.world_size
    drop_last = per_rank >= cfg.batch_size  # a last batch of 1 would upset BatchNorm
    sampler_gen = torch.Generator()
    loader_gen = torch.Generator()
    if dist_info.enabled:
        train_sampler: Any = DistributedSampler(
            train_ds,
            num_replicas=dist_info.world_size,
            rank=dist_info.rank,
            shuffle=True,
            seed=cfg.seed,
            drop_last=True,
        )
    elif cfg.mix:
        # Training-only pools, drawn by source and kind weights (train/sampler.py).
        from train.sampler import build_mixed_train_set

        def pool_dataset(c: Any, root: str, ids: list[int]) -> Any:
            return CocoPersonDataset(c, root, ids, train_ds.transform, crowd=cfg.crowd)

        train_ds, train_sampler = build_mixed_train_set(
            cfg.mix, train_ds, pool_dataset, sampler_gen, say
        )
    else:
        train_sampler = RandomSampler(train_ds, generator=sampler_gen)
    pin = device.type == "cuda"
    train_loader = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        sampler=train_sampler,
        num_workers=cfg.workers,
        drop_last=drop_last,
        pin_memory=pin,
        worker_init_fn=_seed_worker,
        generator=loader_gen,
        persistent_workers=False,  # fresh workers each epoch = fresh per-epoch seeds
    )
    # Validation images keep their aspect ratio (the runtime's area fit), so their sizes
    # differ: one image per batch.
    val_loader = DataLoader(
        val_ds, batch_size=1, shuffle=False, num_workers=min(cfg.workers, 2), pin_memory=pin
    )
    if len(train_loader) == 0:
        raise VbgError("no training batches: fewer training images than --batch-size")

    # --- model, optimizer, schedule -----------------------------------------------------
    torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP broadcasts anyway)
    model = build_model(cfg, load_weights=ckpt is None).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(train_loader)
    total_steps = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_lambda(total_steps, warmup, cfg.final_lr_ratio)
    )
    autocast, scaler, amp_mode = amp_setup(cfg, device)
    loss_fn = loss_from_config(cfg)
    if cfg.teacher and cfg.distill_weight > 0:
        from train.distill import load_teacher, with_distillation

        loss_fn = with_distillation(loss_fn, load_teacher(cfg, device), cfg.distill_weight)
        say(f"distilling from {cfg.teacher} (weight {cfg.distill_weight})")

    prior = PriorSynthesis().scaled(cfg.prior_jitter) if cfg.prior else None
    start_epoch, global_step = 0, 0
    best_loss, best_epoch = math.inf, 0
    history: list[dict[str, Any]] = []
    if ckpt is not None:
        saved = ckpt.get("config", {})
        for key in ("architecture", "encoder", "decoder_channels", "prior"):
            mine = list(v) if isinstance(v := getattr(cfg, key), tuple) else v
            if key in saved and saved[key] != mine:
                raise VbgError(
                    f"cannot resume: the checkpoint's {key} is {saved[key]}, the config says {mine}"
                )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, global_step = int(ckpt["epoch"]), int(ckpt["global_step"])
        best_loss, best_epoch = float(ckpt["best_val_loss"]), int(ckpt["best_epoch"])
        history = list(ckpt["history"])
        set_rng_state(ckpt["rng"])
        if start_epoch >= cfg.epochs:
            say(f"nothing to do: {start_epoch} of {cfg.epochs} epochs already done")
            return FitResult(run_dir, start_epoch, best_epoch, best_loss, False, history, model)

    raw_model = model
    if dist_info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    say(
        f"model: {cfg.architecture}/{cfg.encoder} ({_start_weights(cfg, ckpt)}), "
        f"{sum(p.numel() for p in raw_model.parameters()) / 1e6:.2f} M parameters; device {device}, "
        f"amp {amp_mode}, {dist_info.world_size} process(es), {steps_per_epoch} steps/epoch"
    )

    # --- epochs -------------------------------------------------------------------------
    stopped = False
    epoch = start_epoch
    t_mark = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        if epoch == start_epoch + 2:
            t_mark = time.perf_counter()  # warm-up (CUDA init, autotuning) is behind us
        if cfg.fit_to_time and cfg.time_limit > 0 and epoch == start_epoch + 4:
            cfg = shorten_to_time_limit(cfg, epoch, t_mark, t_start, dist_info, device)
            scheduler.lr_lambdas[0] = cosine_lambda(
                cfg.epochs * steps_per_epoch, warmup, cfg.final_lr_ratio
            )
            if main:
                save_config(cfg, run_dir / "config.yaml")
        if epoch >= cfg.epochs:  # fit_to_time shortened the run
            epoch -= 1
            break
        t0 = time.perf_counter()
        seed = epoch_seed(cfg.seed, epoch, dist_info.rank)
        sampler_gen.manual_seed(seed)
        loader_gen.manual_seed(seed + 1)
        if dist_info.enabled:
            train_sampler.set_epoch(epoch)
        if cfg.workers == 0:
            seed_data_rngs(train_ds, seed, torch_too=True)
        train_stats, steps = train_one_epoch(
            model,
            train_loader,
            optimizer,
            scheduler,
            scaler,
            loss_fn,
            device,
            autocast=autocast,
            grad_clip=cfg.grad_clip,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            show=main,
            dist_info=dist_info,
            prior=prior,
        )
        global_step += steps
        t_train = time.perf_counter() - t0

        # The time limit is decided on rank 0 and broadcast: ranks must agree to stop.
        over = cfg.time_limit > 0 and (time.perf_counter() - t_start) >= cfg.time_limit * 60
        if dist_info.enabled:
            flag = torch.tensor([int(over)], device=device)
            torch.distributed.broadcast(flag, src=0)
            over = bool(flag.item())
        last_epoch = epoch + 1 == cfg.epochs
        do_val = (epoch + 1) % cfg.val_every == 0 or last_epoch or over

        row: dict[str, Any] = {"epoch": epoch + 1, "step": global_step}
        row["train_loss"] = train_stats.pop("total")
        row.update({f"train_loss_{k}": v for k, v in train_stats.items()})
        if main:
            if do_val:
                val = evaluate_loss(
                    raw_model,
                    val_loader,
                    loss_fn,
                    device,
                    autocast=autocast,
                    desc="val",
                    show=main,
                    prior=prior,
                )
                row["val_loss"] = val.pop("loss")
                row.update({f"val_{k}": v for k, v in val.items()})
            row["lr"] = optimizer.param_groups[0]["lr"]
            row["train_seconds"] = round(t_train, 2)
            row["epoch_seconds"] = round(time.perf_counter() - t0, 2)
            row["elapsed_seconds"] = round(time.perf_counter() - t_start, 2)
            history.append(row)
            improved = do_val and row["val_loss"] < best_loss
            if improved:
                best_loss, best_epoch = row["val_loss"], epoch + 1
            state = {
                "format": CHECKPOINT_FORMAT,
                "model": raw_model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch + 1,
                "global_step": global_step,
                "best_val_loss": best_loss,
                "best_epoch": best_epoch,
                "history": history,
                "rng": rng_state(),
                "config": cfg.to_dict(),
                "split_sizes": {k: len(v) for k, v in splits.items()},
                "amp": amp_mode,
                "world_size": dist_info.world_size,
            }
            save_atomic(state, run_dir / "last.pt", keep_previous=True)
            if improved:
                save_atomic(state, run_dir / "best.pt")
            write_logs(history, run_dir)
            plot_curves(history, run_dir / "curves.png")
            msg = f"epoch {epoch + 1}/{cfg.epochs}  train {row['train_loss']:.4f}"
            if do_val:
                msg += (
                    f"  val {row['val_loss']:.4f}  dice {row['val_dice']:.4f}"
                    f"  iou {row['val_iou']:.4f}"
                )
            msg += f"  lr {row['lr']:.2e}  {row['epoch_seconds']:.1f}s" + (
                "  *best*" if improved else ""
            )
            say(msg, flush=True)
        if dist_info.enabled:
            torch.distributed.barrier()  # nobody runs ahead while rank 0 writes
        if over and not last_epoch:
            stopped = True
            say(
                f"time limit of {cfg.time_limit:g} min reached after epoch {epoch + 1}; "
                f"continue with: python -m train fit --out {run_dir} --resume",
                flush=True,
            )
            break

    epochs_done = epoch + 1
    if main:
        say(f"done: {epochs_done} epoch(s); best val loss {best_loss:.4f} at epoch {best_epoch}")
    return FitResult(run_dir, epochs_done, best_epoch, best_loss, stopped, history, raw_model)

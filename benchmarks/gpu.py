"""The GPU path on an NVIDIA GPU, unattended: correctness against the CPU path, live
latency per engine, and batched file throughput. Writes gpu.json and gpu.md into OUT.

    python -m benchmarks.gpu OUT [--frames 300] [--quick]

1. Agreement: the sample clip's frames at 1280x720 through the host (CPU) pipeline with
   onnxruntime and through the GPU path with each GPU engine: IoU of the binarised mattes
   (target >= 0.99) and the composite's grey-level difference (mean, p99.9, max).
2. Live latency at 1280x720 and 1920x1080, batch 1, per GPU engine present (tensorrt,
   torch-cuda with CUDA graphs, torch-cuda eager for comparison, onnxruntime-gpu): from
   the host uint8 frame to the host uint8 composite (upload, model, smoothing, guided
   upsampling, compositing, download), p50/p95 over --frames frames after warm-up; and
   the network alone on a device tensor.
3. Files at 1920x1080: batched frames per second through the GPU path with frames already
   in host memory (no decode), per batch size; then a whole `vbg process` of a 1080p clip
   made here (decode ahead, batches, encode behind with NVENC where PyAV has it, else x264).

Every step is guarded: an engine that is missing or fails is recorded with its reason, and
the rest goes on, so one run always leaves a report. Budget: about 3-5 minutes on an
H100/H200 (model loading and cuDNN autotuning included); --quick cuts the counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO / "assets" / "samples" / "talking-head.mp4"
BACKGROUND = REPO / "assets" / "backgrounds" / "berlin-cathedral.jpg"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "360p": (640, 360)}
GPU_ENGINES = ("tensorrt", "torch-cuda", "torch-cuda-eager", "onnxruntime-gpu")
DEVICE = "cuda"  # --device cpu: a smoke run of the whole script on torch's CPU device


def _size(label: str) -> tuple[int, int]:
    """A size by label, or the first one kept by --sizes."""
    return SIZES.get(label) or next(iter(SIZES.values()))


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "mean": round(float(a.mean()), 3),
    }


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(
            gpu=p.name,
            capability=f"{p.major}.{p.minor}",
            gpu_memory_gb=round(p.total_memory / 2**30, 1),
        )
    for mod in ("onnxruntime", "torch_tensorrt", "av", "cv2"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as e:  # absent or broken: say which
            info[mod] = f"absent ({type(e).__name__})"
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        pass
    return info


def make_engine(name: str, card: Any) -> Any:
    from vbg.engines import create_engine
    from vbg.engines.torch_engine import TorchEngine

    if DEVICE == "cpu":
        return TorchEngine(card, device="cpu")
    if name == "torch-cuda-eager":
        eng = TorchEngine(card, device="cuda", cuda_graphs=False)
        eng.name = "torch-cuda-eager"
        return eng
    from vbg.engines import engine_info, unavailable_reason

    why = unavailable_reason(engine_info(name))
    if why:
        raise RuntimeError(f"not available: {why}")
    return create_engine(name, card, device="cuda")


def device_processor(engine: Any, card: Any, background: str, *, tta: bool = False) -> Any:
    from vbg.device_path import DevicePath, DevicePathConfig
    from vbg.device_processor import DeviceFrameProcessor
    from vbg.framing import Framing
    from vbg.temporal import TemporalConfig

    cfg = DevicePathConfig(temporal=TemporalConfig(), tta=tta)
    path = DevicePath(card, engine.run_tensor, DEVICE, cfg)
    proc = DeviceFrameProcessor(path, engine, framing=Framing(align="center"))
    proc.set_background(background)
    return proc


def frames_at(size: tuple[int, int], count: int) -> list[np.ndarray]:
    from vbg.bench import load_frames

    frames, _ = load_frames(CLIP, count, size)
    while len(frames) < count:  # loop the clip
        frames.extend(frames[: count - len(frames)])
    return frames


# --- 1. agreement --------------------------------------------------------------------------


def agreement(card: Any, engines: dict[str, Any], n: int) -> dict[str, Any]:
    from vbg.framing import Framing
    from vbg.pipeline import build_processor

    frames = frames_at(_size("720p"), n)
    host = build_processor(
        None, engine="onnxruntime", background=str(BACKGROUND), framing=Framing(align="center")
    )
    host_masks, host_out = [], []
    for f in frames:
        host_out.append(host.process(f).copy())
    host.reset()
    for f in frames:
        host_masks.append(host.mask(f).copy())
    host.close()
    out: dict[str, Any] = {}
    for name, eng in engines.items():
        proc = device_processor(eng, card, str(BACKGROUND))
        ious, diffs = [], []
        for f, want in zip(frames, host_out, strict=True):
            got = proc.process(f)
            d = np.abs(got.astype(np.int16) - want)
            diffs.append((float(d.mean()), float(np.percentile(d, 99.9)), int(d.max())))
        proc.reset()
        for f, want in zip(frames, host_masks, strict=True):
            a, b = proc.mask(f) >= 128, want >= 128
            ious.append(float((a & b).sum() / max((a | b).sum(), 1)))
        d = np.asarray(diffs)
        out[name] = {
            "frames": n,
            "iou_min": round(min(ious), 4),
            "iou_mean": round(float(np.mean(ious)), 4),
            "composite_mean_diff": round(float(d[:, 0].mean()), 3),
            "composite_p999_diff": round(float(d[:, 1].max()), 1),
            "composite_max_diff": int(d[:, 2].max()),
            "pass": min(ious) >= 0.99,
        }
    return out


# --- 2. live latency -----------------------------------------------------------------------


def live_latency(card: Any, engines: dict[str, Any], n: int) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    for label, size in SIZES.items():
        frames = frames_at(size, 60)
        for name, eng in engines.items():
            proc = device_processor(eng, card, str(BACKGROUND))
            for f in frames[:30]:  # warm-up: graphs, cuDNN autotuning, allocator
                proc.process(f)
            times = []
            for i in range(n):
                f = frames[i % len(frames)]
                t0 = time.perf_counter()
                proc.process(f)  # returns after the download: the frame is on the host
                times.append((time.perf_counter() - t0) * 1e3)
            # The network alone, on a device tensor of the model's input size.
            from vbg.segmenter import model_input_size

            h, w = model_input_size(size[1], size[0], card.input)
            x = torch.randn(1, 3, h, w, device=DEVICE)
            sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
            for _ in range(20):
                eng.run_tensor(x)
            sync()
            net = []
            for _ in range(n):
                t0 = time.perf_counter()
                eng.run_tensor(x)
                sync()
                net.append((time.perf_counter() - t0) * 1e3)
            out[f"{name}@{label}"] = {
                "engine": getattr(eng, "name", name),
                "size": f"{size[0]}x{size[1]}",
                "end_to_end_ms": _pct(times),
                "network_ms": _pct(net),
            }
    return out


# --- 3. files --------------------------------------------------------------------------------


def _fps(proc: Any, batch: np.ndarray, n: int, warm: int = 3) -> dict[str, Any]:
    """At least n frames through process_batch, after `warm` untimed batches."""
    for _ in range(warm):
        proc.process_batch(batch)
    done, t0 = 0, time.perf_counter()
    while done < n:
        proc.process_batch(batch)
        done += len(batch)
    dt = time.perf_counter() - t0
    return {"frames": done, "seconds": round(dt, 3), "fps": round(done / dt, 1)}


def batched_throughput(card: Any, engine: Any, n: int, batches: tuple[int, ...]) -> dict[str, Any]:
    from vbg.device_path import DevicePathConfig
    from vbg.temporal import TemporalConfig

    frames = np.stack(frames_at(_size("1080p"), max(batches)))
    out: dict[str, Any] = {}
    for b in batches:
        proc = device_processor(engine, card, str(BACKGROUND), tta=False)
        out[f"batch{b}"] = _fps(proc, frames[:b], n)
        if b == max(batches):  # the offline defaults (mirrored pass, decontamination) too
            proc.path.cfg = DevicePathConfig(
                temporal=TemporalConfig(), tta=True, decontaminate=True
            )
            out[f"batch{b}_tta_decontaminate"] = _fps(proc, frames[:b], n, warm=1)
    return out


def make_1080p_clip(path: Path, frames: int) -> Path:
    import av

    w, h = _size("1080p")
    src = frames_at((w, h), min(frames, 120))
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "20"}
        for i in range(frames):
            vf = av.VideoFrame.from_ndarray(src[i % len(src)], format="bgr24")
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def file_throughput(engine_name: str, frames: int, tmp: Path) -> dict[str, Any]:
    """Whole `vbg process` runs of a 1080p clip: decode, GPU path, encode (log kept: it
    says whether NVENC opened or x264 took over)."""
    from vbg.pipeline import build_processor, process_video

    clip = make_1080p_clip(tmp / "in1080.mp4", frames)
    out: dict[str, Any] = {}
    runs = (
        ("live_defaults", {"tta": False, "decontaminate": False}),
        ("offline_defaults", {"tta": True, "decontaminate": True}),
    )
    for label, kw in runs:
        lines = _Lines()
        logging.getLogger("vbg").addHandler(lines)
        logging.getLogger("vbg").setLevel(logging.INFO)
        proc = build_processor(
            None,
            engine=engine_name,
            background=str(BACKGROUND),
            device_path=True if DEVICE == "cpu" else None,
            **kw,
        )
        t0 = time.perf_counter()
        res = process_video(
            clip,
            tmp / f"out-{label}.mp4",
            background=str(BACKGROUND),
            processor=proc,
            progress=False,
        )
        dt = time.perf_counter() - t0
        logging.getLogger("vbg").removeHandler(lines)
        out[label] = {
            "processor": type(proc).__name__,
            "engine": proc.engine_name,
            "frames": res.frames,
            "seconds": round(dt, 2),
            "fps": round(res.frames / dt, 1),
            "log": lines.lines[-5:],
        }
        proc.close()
    return out


# --- report ----------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# GPU path on {m.get('gpu', 'no GPU')} (torch {m.get('torch')}, CUDA {m.get('cuda')})",
        "",
    ]
    lines += [
        "## Agreement with the CPU path (sample clip at 1280x720)",
        "",
        "| engine | IoU min | IoU mean | composite mean / p99.9 / max diff | pass |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in report.get("agreement", {}).items():
        if "error" in r:
            lines.append(f"| {name} | {r['error']} | | | |")
            continue
        lines.append(
            f"| {name} | {r['iou_min']} | {r['iou_mean']} | {r['composite_mean_diff']} / {r['composite_p999_diff']} / {r['composite_max_diff']} | {r['pass']} |"
        )
    lines += [
        "",
        "## Live latency, batch 1 (host frame -> host composite)",
        "",
        "| engine @ size | end to end p50 / p95 ms | network p50 / p95 ms |",
        "| --- | --- | --- |",
    ]
    for key, r in report.get("live", {}).items():
        if "error" in r:
            lines.append(f"| {key} | {r['error']} | |")
            continue
        e, n = r["end_to_end_ms"], r["network_ms"]
        lines.append(f"| {key} | {e['p50']} / {e['p95']} | {n['p50']} / {n['p95']} |")
    lines += [
        "",
        "## Files at 1920x1080 (frames per second)",
        "",
        "| run | frames/s |",
        "| --- | --- |",
    ]
    for key, r in report.get("batched", {}).items():
        lines.append(f"| in memory, {key} | {r.get('fps', r.get('error'))} |")
    for key, r in report.get("files", {}).items():
        lines.append(
            f"| vbg process, {key} ({r.get('engine', '')}) | {r.get('fps', r.get('error'))} |"
        )
    for name, r in report.get("engines", {}).items():
        if r != "ok":
            lines.append(f"\n{name}: {r}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="folder for gpu.json and gpu.md")
    p.add_argument("--frames", type=int, default=300, help="timed frames per measurement")
    p.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    p.add_argument("--clip-frames", type=int, default=None, help="frames of the 1080p clip")
    p.add_argument(
        "--sizes",
        nargs="+",
        choices=tuple(SIZES),
        default=["720p", "1080p"],
        help="live-latency sizes (360p: for a CPU smoke run)",
    )
    p.add_argument(
        "--device",
        default="cuda",
        choices=("cuda", "cpu"),
        help="cpu: run every step on torch's CPU device with the torch engine (a smoke test)",
    )
    args = p.parse_args(argv)
    import torch

    global DEVICE
    DEVICE = args.device
    from vbg.assets import default_card_path
    from vbg.card import load_card

    n = min(60, args.frames) if args.quick else args.frames
    for label in list(SIZES):
        if label not in args.sizes:
            SIZES.pop(label)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": machine(),
        "frames": n,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    t_start = time.perf_counter()

    def save() -> None:
        report["seconds"] = round(time.perf_counter() - t_start, 1)
        (args.out / "gpu.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        (args.out / "gpu.md").write_text(markdown(report))

    if DEVICE == "cuda" and not torch.cuda.is_available():
        report["error"] = "torch sees no CUDA GPU"
        save()
        print("no CUDA GPU", file=sys.stderr)
        return 1
    card = load_card(default_card_path())
    engines: dict[str, Any] = {}
    report["engines"] = {}
    for name in GPU_ENGINES if DEVICE == "cuda" else ("torch",):
        try:
            engines[name] = make_engine(name, card)
            report["engines"][name] = "ok"
        except Exception as e:
            report["engines"][name] = f"{type(e).__name__}: {e}"
    save()

    def step(key: str, fn, *a) -> None:
        t0 = time.perf_counter()
        try:
            report[key] = fn(*a)
        except Exception as e:
            report[key] = {
                "error": f"{type(e).__name__}: {e}",
                "trace": traceback.format_exc()[-2000:],
            }
        report.setdefault("step_seconds", {})[key] = round(time.perf_counter() - t0, 1)
        save()
        print(f"{key}: {report['step_seconds'][key]} s", file=sys.stderr, flush=True)

    step("agreement", agreement, card, engines, 30 if args.quick else 60)
    step("live", live_latency, card, engines, n)
    order = (*GPU_ENGINES, "torch")
    best = next((engines[k] for k in order if k in engines), None)
    if best is not None:
        step("batched", batched_throughput, card, best, 4 * n, (1, 8, 32) if n > 10 else (1, 2))
    best_name = next((k for k in order if k in engines and k != "torch-cuda-eager"), None)
    if best_name is not None:
        with tempfile.TemporaryDirectory() as tmp:
            clip_frames = args.clip_frames or (120 if args.quick else 600)
            step("files", file_throughput, best_name, clip_frames, Path(tmp))
    save()
    print((args.out / "gpu.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

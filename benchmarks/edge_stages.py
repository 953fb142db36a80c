"""Cost of each matte/compositing stage of issue 11 at one frame size (default 1280x720).

Each stage runs on the same synthetic frame and matte (a person-shaped ellipse, a model
probability at 160x288), interleaved round-robin so machine noise hits every stage alike;
reported: median and p95 in ms over --repeat rounds.

    python -m benchmarks.edge_stages --size 1280x720 --repeat 200
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import cv2
import numpy as np

from vbg.blur import HaloFreeBlur
from vbg.cleanup import ComponentFilter, MatteBounds
from vbg.config import parse_size
from vbg.harmonize import Harmonizer
from vbg.lightwrap import LightWrap
from vbg.temporal import TemporalConfig, TemporalSmoother


def _inputs(w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (7, 7), 0)
    alpha = np.zeros((h, w), np.uint8)
    cv2.ellipse(alpha, (w // 2, h), (w // 5, int(h * 0.8)), 0, 0, 360, 255, -1)
    alpha = cv2.GaussianBlur(alpha, (9, 9), 0)
    ph, pw = 160, 288
    prob = cv2.resize(alpha, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return frame, alpha, prob


def stages(w: int, h: int) -> dict[str, Callable[[], object]]:
    frame, alpha, prob = _inputs(w, h)
    frame2 = np.roll(frame, 3, axis=1)
    ema = TemporalSmoother(TemporalConfig(mode="ema"))
    adaptive = TemporalSmoother(TemporalConfig())
    adaptive_flow = TemporalSmoother(TemporalConfig(motion=True))
    bounds = MatteBounds()
    comps = ComponentFilter(0.01, 0.005)
    blur = HaloFreeBlur(41)
    plain_small = (w // 4, h // 4)
    lw = LightWrap()
    lw.set_background(frame2)
    hz = Harmonizer()
    hz.set_background(frame2)
    out = frame.copy()
    flip = [frame, frame2]
    i = [0]

    def alt() -> np.ndarray:
        i[0] ^= 1
        return flip[i[0]]

    def plain_blur() -> None:  # what Compositor did before: blur the whole frame, small
        s = cv2.resize(frame, plain_small, interpolation=cv2.INTER_AREA)
        s = cv2.GaussianBlur(s, (11, 11), 0)
        cv2.resize(s, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)

    return {
        "temporal: plain EMA (before)": lambda: ema(prob),
        "temporal: adaptive (default)": lambda: adaptive(prob),
        "temporal: adaptive + optical flow (motion=True)": lambda: adaptive_flow(prob, alt()),
        "edges: bounds + levels": lambda: bounds(prob, alpha.copy()),
        "edges: specks/holes": lambda: comps(prob.copy()),
        "blur: plain blur:41 (before)": plain_blur,
        "blur: halo-free blur:41": lambda: blur(frame, alpha),
        "light wrap": lambda: lw(out, alpha),
        "harmonize": lambda: hz(frame, alpha),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--repeat", type=int, default=200)
    a = ap.parse_args(argv)
    w, h = parse_size(a.size)
    todo = stages(w, h)
    times: dict[str, list[float]] = {k: [] for k in todo}
    for _ in range(10):  # warm-up: buffers, flow object
        for f in todo.values():
            f()
    for _ in range(a.repeat):
        for k, f in todo.items():
            t = time.perf_counter()
            f()
            times[k].append((time.perf_counter() - t) * 1e3)
    print(f"| stage at {w}x{h} | median ms | p95 ms |")
    print("| --- | --- | --- |")
    for k, v in times.items():
        print(f"| {k} | {np.median(v):.2f} | {np.percentile(v, 95):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

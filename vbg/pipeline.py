"""The loop: frame -> segmenter -> temporal smoothing -> refinement -> compositing -> sinks.

`FrameProcessor` is the per-frame work, shared by every driver:
  - `process_video`  a recorded video or image, every frame, to a file (`vbg process`);
  - `run_live`       a camera (or any live source) to a virtual camera / preview / file;
  - `vbg.evaluate`   the same `mask()` path, scored against ground truth (`vbg eval`).

All stages are timed by one `vbg.timing.StageTimer` with the names in `timing.STAGES`:
capture (decoding a file frame, or for a live source the age of the frame when the loop
picks it up), preprocess, inference, smoothing (temporal smoothing and refinement of the
mask to frame size), compositing, output (the sinks). A live run also records the
glass-to-glass latency per frame (sink write done - frame capture) as the series
"glass_to_glass", which is not a stage and not part of "total".
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import cv2
import numpy as np

from vbg import VbgError
from vbg.timing import StageTimer

if TYPE_CHECKING:
    from vbg.backgrounds import BackgroundSpec
    from vbg.card import ModelCard
    from vbg.compose import Compositor
    from vbg.config import ProcessConfig, RunConfig
    from vbg.edges import EdgeColors
    from vbg.framing import Framing
    from vbg.outputs import OutputOptions
    from vbg.refine import Refiner
    from vbg.roi import PersonCrop
    from vbg.segmenter import Segmenter
    from vbg.sources import Frame
    from vbg.temporal import TemporalConfig, TemporalSmoother

log = logging.getLogger(__name__)

VIDEO_OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
GLASS_TO_GLASS = "glass_to_glass"
FIRST_FRAME_TIMEOUT_S = 10.0
LIVE_SAMPLE_WINDOW = 20_000  # per-frame timings a live run keeps (~11 min at 30 fps)


# ---------------------------------------------------------------------------- per frame


@dataclass
class FrameProcessor:
    """One frame in, the composited frame (or just the alpha matte) out.

    The returned arrays are buffers reused by the next call: copy them to keep them.
    The compositor is made on the first `process()` call, for that frame size (it fits the
    background image once per size), from `background`.
    """

    segmenter: Segmenter
    smoother: TemporalSmoother | None
    refiner: Refiner
    compositor: Compositor | None = None
    timer: StageTimer = field(default_factory=StageTimer)
    background: BackgroundSpec | None = None
    tta: bool = False
    edge_colors: EdgeColors | None = None  # offline: decontaminate soft-edge colours
    light_wrap: bool = True  # image backgrounds: the scene's light on the edge (vbg.lightwrap)
    harmonize: bool = False  # image backgrounds: person's tone toward the scene (vbg.harmonize)
    framing: Framing | None = None  # where image backgrounds put their landmark
    # --quality high: the default (or --model) at its card's input size, averaged into
    # `segmenter`'s finer one (the bundled hq model, or the same model at
    # vbg.segmenter.high_quality_spec); None = one model, one size.
    coarse: Segmenter | None = None
    # --follow: the network sees a crop around the person (vbg.roi); None = the whole frame
    roi: PersonCrop | None = None
    # A crop size the engine has still to compile (OpenVINO: 0.5-0.8 s): offline, wait for
    # it (the same frames give the same output every run); live (run_live sets False),
    # segment the whole frame until the background compile is done: no frozen picture.
    wait_for_compile: bool = True
    _coarse_up: np.ndarray | None = field(default=None, init=False, repr=False)

    @property
    def engine_name(self) -> str:
        return str(getattr(self.segmenter.engine, "name", type(self.segmenter.engine).__name__))

    def probability(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Person probability at model resolution (before smoothing): the segmenter's grid,
        with the coarse size averaged in at that grid (--quality high)."""
        roi = self.roi
        box = roi.start(frame_bgr) if roi is not None else None
        check = roi is not None and roi.check_due()
        if box is not None and not self._crop_ready():
            box, check = None, True  # the whole frame this time: a check as well
        prob = self._probability(self.segmenter, frame_bgr, box, check)
        if self.coarse is not None:
            coarse = self._probability(self.coarse, frame_bgr, box, check)
            with self.timer.stage("inference"):
                if self._coarse_up is None or self._coarse_up.shape != prob.shape:
                    self._coarse_up = np.empty_like(prob)  # once per frame size
                up = self._coarse_up
                cv2.resize(coarse, prob.shape[::-1], dst=up, interpolation=cv2.INTER_LINEAR)
                prob += up
                prob *= 0.5
        if roi is not None:
            roi.update(prob, checked=check)
        return prob

    def _crop_ready(self) -> bool:
        """Whether the crop's compiled input passes and every engine at the current crop's
        size run at once (see wait_for_compile)."""
        from vbg.roi import crop_kernels_ready

        assert self.roi is not None
        if not crop_kernels_ready(wait=self.wait_for_compile):
            return False
        for seg in (self.segmenter, self.coarse):
            ready = getattr(seg.engine, "ready", None) if seg is not None else None
            if ready is not None:
                h, w = self.roi.shape_for(seg.card.input)
                if not ready(h, w, wait=self.wait_for_compile):
                    return False
        return True

    def _probability(
        self, seg: Segmenter, frame_bgr: np.ndarray, box: tuple[int, ...] | None, check: bool
    ) -> np.ndarray:
        t = self.timer
        with t.stage("preprocess"):
            x = seg.prepare(frame_bgr)  # also the whole frame's small image: the guide
            if box is not None:
                assert self.roi is not None
                xc = seg.prepare_crop(frame_bgr, box, self.roi.shape_for(seg.card.input))
        with t.stage("inference"):
            if box is None:
                prob = self._net(seg, x)
            else:
                assert self.roi is not None
                full = self._net(seg, x) if check else None  # people outside the box
                prob = self.roi.paste(self._net(seg, xc), x.shape[2:], full)
            seg.remember(prob)  # a prior model's previous frame (a no-op otherwise)
        return prob

    def _net(self, seg: Segmenter, x: np.ndarray) -> np.ndarray:
        """The network's probability for one input (a new array); with test-time
        augmentation averaged with the mirrored input's. Mirroring the preprocessed tensor
        equals preprocessing the mirrored frame (resizing is symmetric) and costs a small
        copy instead of a full-frame flip; a prior model's previous-frame plane is mirrored
        with the image, which fits."""
        prob = seg.infer(x)
        if self.tta:
            prob += seg.infer(np.ascontiguousarray(x[:, :, :, ::-1]))[:, ::-1]
            prob *= 0.5
        return prob

    def mask(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Alpha matte uint8 HxW (255 = person) at frame resolution: exactly what is
        composited, and what `vbg eval` scores."""
        prob = self.probability(frame_bgr)
        with self.timer.stage("smoothing"):
            if self.smoother is not None:
                prob = self.smoother(prob, frame_bgr)
            # The segmenter's model-resolution image: the guided filter's small guide.
            return self.refiner(prob, frame_bgr, getattr(self.segmenter, "small", None))

    def process(self, frame_bgr: np.ndarray, t: float | None = None) -> np.ndarray:
        """The composited BGR frame. t: its time in seconds (which frame of a video
        background shows; None = the wall clock, for live sources)."""
        alpha = self.mask(frame_bgr)
        with self.timer.stage("compositing"):
            if self.compositor is None:
                if self.background is None:
                    raise VbgError("no background set for compositing")
                from vbg.compose import Compositor

                self.compositor = Compositor(
                    self.background,
                    frame_bgr.shape[:2],
                    framing=self.framing,
                    light_wrap=self.light_wrap,
                    harmonize=self.harmonize,
                )
            if self.edge_colors is not None:
                frame_bgr = self.edge_colors(frame_bgr, alpha)
            return self.compositor(frame_bgr, alpha, t)

    def reset(self) -> None:
        """Forget temporal state: a scene cut, a seek, a new still image, a restarted source."""
        if self.smoother is not None:
            self.smoother.reset()
        self.refiner.reset()
        self.segmenter.reset()  # a prior model's previous frame
        if self.coarse is not None:
            self.coarse.reset()
        if self.roi is not None:
            self.roi.reset()

    def set_background(self, background: str | BackgroundSpec) -> None:
        """Switch background (a --background string or a parsed spec); takes effect next frame."""
        from vbg.backgrounds import parse_background

        spec = parse_background(background) if isinstance(background, str) else background
        self.background = spec
        if self.compositor is not None:
            self.compositor.set_background(spec)

    def close(self) -> None:
        if self.compositor is not None:
            self.compositor.close()  # a video background's decoding thread
        self.segmenter.engine.close()
        if self.coarse is not None and self.coarse.engine is not self.segmenter.engine:
            self.coarse.engine.close()


def build_processor(
    model: str | Path | None = None,
    *,
    engine: str = "auto",
    threads: int | None = None,
    device: str | None = None,
    background: str | BackgroundSpec | None = "blur",
    size: tuple[int, int] | None = None,
    temporal: TemporalConfig | None = None,
    smoothing: bool = True,
    edges: str = "guided",
    feather_px: int = 0,
    crf_every: int = 0,
    tta: bool = False,
    decontaminate: bool = False,
    light_wrap: bool = True,
    harmonize: bool = False,
    timer: StageTimer | None = None,
    framing: Framing | None = None,
    device_path: bool | None = None,
    quality: str = "standard",
    follow: bool = True,
) -> FrameProcessor:
    """A FrameProcessor for the model card at `model` (None = the bundled default model).

    background: a --background string, a parsed spec, or None (mask only, e.g. for eval).
    size: the frame size (height, width) when known: the compositor is made (and the
    background fitted) now rather than on the first frame. Everything a user typed is checked before the model loads.
    device_path: keep the whole frame on the engine's device (vbg.device_processor); None =
    whenever the engine runs on a CUDA GPU and every option has a device form.
    quality: "standard", or "high": the bundled high-quality model beside the default (or
    a --model at two input sizes), averaged (_high_quality_card; about 3x the inference,
    for `vbg process`).
    follow: run the network on a crop that follows the person (vbg.roi) where the model
    takes any input size and has no previous-frame input; the device path always sees the
    whole frame.
    """
    from vbg.backgrounds import parse_background
    from vbg.card import load_card
    from vbg.config import QUALITIES
    from vbg.edges import EdgeColors
    from vbg.engines import create_engine
    from vbg.refine import Refiner
    from vbg.segmenter import Segmenter
    from vbg.temporal import TemporalConfig, TemporalSmoother

    if quality not in QUALITIES:
        raise VbgError(f"--quality must be one of {', '.join(QUALITIES)}, not {quality!r}")
    spec = parse_background(background) if isinstance(background, str) else background
    try:
        tcfg = temporal or TemporalConfig()
        refiner = Refiner(feather_px=feather_px, crf_every=crf_every, edges=edges)
    except ValueError as e:
        raise VbgError(f"bad smoothing option: {e}") from e
    card = load_card(_card_path(model, engine, device))
    fine = _high_quality_card(card, model, engine, device) if quality == "high" else None
    eng = create_engine(engine, card, threads=threads, device=device)
    fine_eng = eng
    try:
        on_device = _use_device_path(
            eng,
            device_path,
            edges=edges,
            feather_px=feather_px,
            crf_every=crf_every,
            harmonize=harmonize,
            background=spec,
            quality=quality,
            prior=card.input.prior,
        )
        if on_device:
            from vbg.device_path import DevicePath, DevicePathConfig
            from vbg.device_processor import DeviceFrameProcessor, engine_tensor_device

            dcfg = DevicePathConfig(
                temporal=tcfg if smoothing else None,
                light_wrap=light_wrap,
                tta=tta,
                decontaminate=decontaminate,
            )
            path = DevicePath(card, eng.run_tensor, engine_tensor_device(eng), dcfg)
            return DeviceFrameProcessor(  # type: ignore[return-value]
                path,
                eng,
                background=spec,
                framing=framing,
                timer=timer or StageTimer(),
                edge_colors=EdgeColors() if decontaminate else None,
            )
        warm_up_hot_path()
        if fine is not None and fine.path != card.path:
            fine_eng = create_engine(engine, fine, threads=threads, device=device)
        proc = FrameProcessor(
            segmenter=Segmenter(fine or card, fine_eng),
            coarse=Segmenter(card, eng) if fine is not None else None,
            smoother=TemporalSmoother(tcfg) if smoothing else None,
            refiner=refiner,
            timer=timer or StageTimer(),
            background=spec,
            tta=tta,
            edge_colors=EdgeColors() if decontaminate else None,
            light_wrap=light_wrap,
            harmonize=harmonize,
            framing=framing,
            roi=_person_crop(fine or card, card) if follow else None,
        )
        if spec is not None and size is not None:
            from vbg.compose import Compositor

            proc.compositor = Compositor(
                spec, size, framing=framing, light_wrap=light_wrap, harmonize=harmonize
            )
    except BaseException:
        eng.close()
        if fine_eng is not eng:
            fine_eng.close()
        raise
    return proc


def _person_crop(fine: ModelCard, card: ModelCard) -> PersonCrop | None:
    """vbg.roi's crop follower for these cards, or None where a card cannot take it."""
    from vbg.roi import PersonCrop

    if any(c.input.prior or c.input.fit != "area" for c in (fine, card)):
        return None
    return PersonCrop(fine.input)


def _high_quality_card(
    card: ModelCard, model: str | Path | None, engine: str | None, device: str | None
) -> ModelCard:
    """The finer model of --quality high. For the bundled default: the bundled
    high-quality model (trained at its larger input size; its INT8 copy on the CPU engines)
    when it is there. For a --model card, or without it: the same model at
    vbg.segmenter.high_quality_spec's finer size."""
    from vbg.card import load_card
    from vbg.segmenter import high_quality_spec

    if model is None:
        from vbg.assets import hq_card_path, int8_card_path

        int8 = card.path == int8_card_path()  # _card_path chose the default's INT8 copy
        path = hq_card_path(int8=int8)
        if not path.is_file() and int8:
            path = hq_card_path()
        if path.is_file():
            log.info("model: %s beside %s (--quality high)", path.stem, card.name)
            return load_card(path)
    try:
        return dataclasses.replace(card, input=high_quality_spec(card.input))
    except ValueError as e:
        raise VbgError(f"--quality high: {e} ({card.path})") from e


_warmed_up = False  # warm_up_hot_path ran in this process


def warm_up_hot_path() -> None:
    """Compile the hot path's numba passes (vbg.fused) now, on a tiny frame, rather than on
    the first real one: a cold compile takes about 15 s on 2 cores (once per machine: the
    result is cached on disk), which a live call would show as a frozen first frame. Once
    per process."""
    global _warmed_up
    if _warmed_up:
        return
    import threading

    from vbg.backgrounds import BackgroundSpec
    from vbg.compose import Compositor
    from vbg.fused_input import InputPlan
    from vbg.refine import Refiner
    from vbg.temporal import TemporalSmoother

    def run() -> None:
        # The model input: a frame with two halvings (32 -> 8 rows) and with one (24 -> 12).
        # (vbg.roi's crops compile their own passes in the background: crop_kernels_ready.)
        for fh in (32, 24):
            InputPlan((fh, 2 * fh), (8, 16), True, (1.0,) * 3, (0.0,) * 3)(
                np.zeros((fh, 2 * fh, 3), np.uint8),
                np.empty((8, 16, 3), np.uint8),
                np.empty((1, 3, 8, 16), np.float32),
            )
        # Widths of whole groups of 8 pixels (word copies) and not (854-wide video).
        for w in (64, 60):
            frame = np.zeros((32, w, 3), np.uint8)
            frame[8:24, 16:48] = 200
            prob = np.zeros((8, 16), np.float32)
            prob[2:6, 4:12] = 1.0
            smoother, refiner = TemporalSmoother(), Refiner()
            comp = Compositor(BackgroundSpec(kind="color", color_bgr=(0, 177, 64)), (32, w))
            for _ in range(2):  # the second frame runs the temporal blend and hysteresis
                comp(frame, refiner(smoother(prob), frame))

    done = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            run()
        except BaseException as e:  # raised again in the caller
            errors.append(e)
        finally:
            done.set()

    t0 = time.perf_counter()
    # On a thread only so that a slow (cold) compile can be announced while it runs.
    threading.Thread(target=work, name="vbg-warm-up", daemon=True).start()
    if not done.wait(1.0):
        log.info("compiling the frame's hot path for this machine (first start only)")
        done.wait()
        log.info("compiled in %.0f s", time.perf_counter() - t0)
    if errors:
        raise errors[0]
    _warmed_up = True


def _use_device_path(eng: Any, wanted: bool | None, **options: Any) -> bool:
    """Whether the frame stays on the engine's device; says why not where it matters."""
    from vbg.device_processor import device_path_blocker, engine_tensor_device

    where = engine_tensor_device(eng)
    blocker = device_path_blocker(**options)
    if wanted is None:
        if where.startswith("cuda") and blocker:
            log.info("frame post-processing on the CPU: %s has no GPU form yet", blocker)
        return where.startswith("cuda") and not blocker
    if not wanted:
        return False
    if not where:
        raise VbgError(f"engine {eng.name} cannot keep the frame on a device (no run_tensor)")
    if blocker:
        raise VbgError(f"the device path cannot do {blocker}")
    return True


# The CPU engines that run the default model's INT8 copy when no model is named.
INT8_ENGINES = ("openvino", "onnxruntime")


def _card_path(
    model: str | Path | None, engine: str | None = None, device: str | None = None
) -> Path:
    """--model as given, else the bundled default: its INT8 copy on the CPU engines (same
    IoU on the test split, faster), the float model elsewhere (torch, the GPU engines)."""
    if model is not None:
        return Path(model).expanduser()
    from vbg.assets import default_card_path, int8_card_path
    from vbg.engines import resolve_engine

    cpu_engine = engine is not None and resolve_engine(engine, device) in INT8_ENGINES
    if cpu_engine and device != "cuda" and int8_card_path().is_file():
        log.info("model: default-int8 (the default model's INT8 copy, for the CPU engines)")
        return int8_card_path()
    path = default_card_path()
    if not path.is_file():
        raise VbgError(
            f"the default model is missing ({path}); pass --model CARD.json "
            "(train one with: python -m train)"
        )
    return path


def _temporal_config(cfg: ProcessConfig | RunConfig) -> TemporalConfig:
    from vbg.temporal import TemporalConfig

    try:
        return TemporalConfig(
            mode=cfg.smoothing,
            ema=cfg.ema,
            open_px=cfg.open_px,
            close_px=cfg.close_px,
            cut_threshold=cfg.cut_threshold,
        )
    except ValueError as e:
        raise VbgError(f"bad smoothing option: {e}") from e


def _output_options(cfg: ProcessConfig) -> OutputOptions:
    from vbg.outputs import OutputOptions

    if cfg.mask_only and cfg.output_alpha:
        raise VbgError("--mask-only and --output-alpha exclude each other: choose one")
    mode = "mask" if cfg.mask_only else "alpha" if cfg.output_alpha else "composite"
    try:
        return OutputOptions(mode=mode, crf=cfg.crf, preset=cfg.preset, overwrite=cfg.overwrite)
    except ValueError as e:
        raise VbgError(str(e)) from e


def _framing(cfg: ProcessConfig | RunConfig) -> Framing:
    from vbg.framing import Framing

    try:
        return Framing(align=cfg.background_align, zoom=cfg.background_zoom)
    except ValueError as e:
        raise VbgError(f"bad background framing: {e}") from e


# ---------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar with rate and ETA, on stderr, only when it is a terminal
    (a log file or a CI capture should not fill up with carriage returns)."""

    def __init__(
        self,
        total: int | None,
        *,
        enabled: bool | None = None,
        label: str = "",
        unit: str = "frames",
        stream: TextIO | None = None,
        min_interval: float = 0.1,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        tty = bool(isatty and isatty())
        self.enabled = tty if enabled is None else (enabled and tty)
        self.total = total if total and total > 0 else None
        self.label, self.unit = label, unit
        self.n = 0
        self._t0 = time.perf_counter()
        self._last = 0.0
        self._min_interval = min_interval
        self._shown = False

    @staticmethod
    def _clock(seconds: float) -> str:
        if not math.isfinite(seconds):
            return "?"
        s = int(round(seconds))
        return (
            f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
            if s >= 3600
            else f"{s // 60}:{s % 60:02d}"
        )

    def line(self) -> str:
        elapsed = time.perf_counter() - self._t0
        rate = self.n / elapsed if elapsed > 0 else 0.0
        if self.total:
            frac = min(1.0, self.n / self.total)
            width = 24
            fill = int(frac * width)
            eta = (self.total - self.n) / rate if rate > 0 else float("inf")
            return (
                f"{self.label} {frac * 100:3.0f}% |{'#' * fill}{'.' * (width - fill)}| "
                f"{self.n}/{self.total} {self.unit}  {rate:.1f}/s  "
                f"elapsed {self._clock(elapsed)}  ETA {self._clock(eta)}"
            )
        return f"{self.label} {self.n} {self.unit}  {rate:.1f}/s  elapsed {self._clock(elapsed)}"

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last >= self._min_interval or (self.total and self.n >= self.total):
            self._last = now
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()
            self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
            self.stream.flush()
            self._shown = False


# ---------------------------------------------------------------------------- offline


@dataclass
class ProcessResult:
    output: Path
    frames: int
    seconds: float
    timer: StageTimer
    interrupted: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def process_video(
    input: str | Path,
    output: str | Path,
    *,
    background: str | BackgroundSpec = "blur",
    model: str | Path | None = None,
    engine: str = "auto",
    threads: int | None = None,
    temporal: TemporalConfig | None = None,
    edges: str = "guided",
    feather_px: int = 0,
    crf_every: int = 0,
    tta: bool = True,
    decontaminate: bool = True,
    light_wrap: bool = True,
    harmonize: bool = False,
    progress: bool = True,
    keep_partial_on_interrupt: bool = False,
    processor: FrameProcessor | None = None,
    framing: Framing | None = None,
    quality: str = "standard",
    follow: bool = True,
    out: OutputOptions | None = None,
) -> ProcessResult:
    """Replaces the background of every frame of a video (or of one image) into `output`.

    Video: H.264 MP4 with the input's frame count, timestamps and audio (copied). The file
    is written under a unique temporary name and renamed when complete. A run cut short -
    Ctrl-C or SIGTERM/SIGHUP (KeyboardInterrupt), or an input that stops decoding part-way
    (VbgError naming the frame and time) - removes the partial file, or with
    keep_partial_on_interrupt finalizes it as a valid shorter file; the error is re-raised
    either way.
    Image input: an image output (png/jpg/...), written atomically.
    processor: a ready FrameProcessor (its background is replaced by `background`).
    out: the output mode (composite, mask, alpha), H.264 quality and overwriting (see
    vbg.outputs); default: a composite at the default quality, replacing an existing file.
    """
    from vbg.outputs import (
        OutputOptions,
        check_alpha_output,
        check_overwrite,
        is_png_sequence,
        renderer,
    )
    from vbg.sinks import ImageSink, check_output_path
    from vbg.sources import ImageSource, open_input

    out = out or OutputOptions(overwrite=True)
    input, output = Path(input), Path(output)
    src = open_input(input)  # missing / corrupt input fails here, before anything is made
    try:
        if output.exists() and output.resolve() == input.resolve():
            raise VbgError(f"output {output} is the input file; choose another name")
        # Before the model loads: a missing folder, a folder under a file name, no
        # permission (a PNG-sequence output is a folder by design), then an existing output
        # (unless --overwrite).
        if not (out.mode == "alpha" and is_png_sequence(output)):
            check_output_path(output)
        check_overwrite(output, overwrite=out.overwrite)
        is_image = isinstance(src, ImageSource)
        suffix = output.suffix.lower()
        if out.mode == "alpha":
            check_alpha_output(output, is_image=is_image)
        elif is_image and suffix not in ImageSink.EXTS:
            raise VbgError(
                f"the input is an image, so the output must be one too "
                f"({', '.join(sorted(ImageSink.EXTS))}), not {output.name}"
            )
        elif not is_image and suffix not in VIDEO_OUTPUT_SUFFIXES:
            raise VbgError(
                f"the output of a video must be {', '.join(VIDEO_OUTPUT_SUFFIXES)} "
                f"(H.264), not {output.name}"
            )

        own = processor is None
        if processor is None:
            processor = build_processor(
                model,
                engine=engine,
                threads=threads,
                background=background,
                size=(src.height, src.width),
                temporal=temporal,
                edges=edges,
                feather_px=feather_px,
                crf_every=crf_every,
                tta=tta,
                decontaminate=decontaminate,
                light_wrap=light_wrap,
                harmonize=harmonize,
                framing=framing,
                quality=quality,
                follow=follow,
            )
        else:
            processor.set_background(background)
        try:
            render = renderer(processor, out.mode)
            if is_image:
                return _process_image(src, output, processor, render)
            if out.mode == "alpha":
                from vbg.alpha_sinks import open_alpha_sink

                sink = open_alpha_sink(output, fps=src.fps, width=src.width, height=src.height)
            else:
                sink = _open_video_sink(output, src, input, out, gpu=_on_gpu(processor))
            return _process_frames(
                src, sink, processor, progress, keep_partial_on_interrupt, render
            )
        finally:
            if own:
                processor.close()
    finally:
        src.close()


def _on_gpu(proc: Any) -> bool:
    """Whether the processor's frames live on a CUDA device (the GPU path)."""
    device = getattr(getattr(proc, "path", None), "device", None)
    return getattr(device, "type", "") == "cuda"


def _open_video_sink(output: Path, src: Any, input: Path, out: Any, *, gpu: bool) -> Any:
    """The H.264 file sink: NVENC first when frames come off a GPU and the PyAV build has it
    (its failure to open, e.g. no driver, is one log line and x264 takes over), else x264."""
    from vbg.sinks import VideoFileSink, h264_encoders

    encoders = h264_encoders(gpu)
    for i, encoder in enumerate(encoders):
        try:
            return VideoFileSink(
                output,
                fps=src.fps,
                width=src.width,
                height=src.height,
                audio_from=input if src.has_audio else None,
                crf=out.crf,
                preset=out.preset,
                encoder=encoder,
            )
        except VbgError as e:
            if i == len(encoders) - 1:
                raise
            log.info("encoder %s unavailable (%s); using %s", encoder, e, encoders[i + 1])
    raise AssertionError("unreachable")


def _process_image(src: Any, output: Path, proc: FrameProcessor, render: Any) -> ProcessResult:
    from vbg.sinks import ImageSink

    t0 = time.perf_counter()
    frame = next(iter(src))
    proc.reset()
    out = render(frame.image)
    with proc.timer.stage("output"):
        sink = ImageSink(output)
        sink.write(out)
        sink.close()
    proc.timer.end_frame()
    return ProcessResult(output, 1, time.perf_counter() - t0, proc.timer)


def _process_frames(
    src: Any,
    sink: Any,
    proc: FrameProcessor,
    progress: bool,
    keep_partial: bool,
    render: Any = None,
) -> ProcessResult:
    """Every frame of `src` through `render` into `sink`, decoding ahead and encoding behind
    on their own threads (vbg.overlap); a processor with process_batch (the GPU path) gets
    the frames in batches when it renders composites."""
    from vbg.overlap import ReadAhead, WriteBehind

    timer = proc.timer
    render = render or proc.process  # frame -> what the sink writes (vbg.outputs.renderer)
    batch = int(getattr(proc, "batch_size", 1)) if render == proc.process else 1
    bar = Progress(src.frame_count, enabled=progress, label=Path(sink.path).name)
    t0 = time.perf_counter()
    proc.reset()  # a new video: no state from whatever ran before
    frames = ReadAhead(src)
    writer = WriteBehind(sink)
    try:
        while True:
            with timer.stage("capture"):  # waiting for the decoder
                group = _next_frames(frames, batch)
            if not group:
                break
            if len(group) > 1 and len({f.image.shape for f in group}) == 1:
                images = np.stack([f.image for f in group])
                outs = proc.process_batch(images)  # type: ignore[attr-defined]
            else:  # one frame, or a size change inside the batch: frame by frame, in order
                outs = [np.array(render(f.image, f.pts), copy=True) for f in group]
            for frame, out in zip(group, outs, strict=True):
                with timer.stage("output"):  # a copy into the encoder's queue
                    writer.write(out, frame.pts)
                timer.end_frame()
                bar.update()
        bar.close()
        writer.close()  # renames the finished file into place
    except KeyboardInterrupt as e:
        bar.close()
        # The CLI prints one line: "vbg: interrupted (SIGTERM): <what became of the file>".
        e.detail = _end_partial(writer, keep_partial)  # type: ignore[attr-defined]
        raise
    except VbgError:
        # A truncated or corrupt input (the error says where decoding stopped), or an
        # encoding error: the frames so far are kept only when asked to.
        bar.close()
        log.warning("stopped early: %s", _end_partial(writer, keep_partial))
        raise
    except BaseException:
        bar.close()
        writer.abort()
        raise
    finally:
        frames.close()
    return ProcessResult(Path(sink.path), sink.frames_written, time.perf_counter() - t0, timer)


def _next_frames(frames: Any, n: int) -> list[Frame]:
    """Up to n frames from the iterator (fewer at the end)."""
    group: list[Frame] = []
    for frame in frames:
        group.append(frame)
        if len(group) >= n:
            break
    return group


def _end_partial(sink: Any, keep: bool) -> str:
    """A run cut short: finalize the frames written so far as a valid shorter file (keep),
    or remove it; says which. Never raises: the reason the run stopped is what the user
    must see."""
    if keep and sink.frames_written > 0:
        try:
            sink.close(trim_audio=True)
        except (VbgError, OSError) as e:
            sink.abort()
            return f"could not keep the partial {sink.path}: {e}"
        return f"kept the first {sink.frames_written} frames in {sink.path}"
    sink.abort()
    return f"{sink.path} not written"


def process_config(cfg: ProcessConfig) -> ProcessResult:
    """`vbg process` from its resolved config."""
    if not cfg.input or not cfg.output:
        raise VbgError("vbg process needs an INPUT and -o OUTPUT")
    result = process_video(
        cfg.input,
        cfg.output,
        background=cfg.background,
        model=cfg.model,
        engine=cfg.engine,
        threads=cfg.threads,
        temporal=_temporal_config(cfg),
        edges=cfg.edges,
        feather_px=cfg.feather_px,
        crf_every=cfg.crf_every,
        tta=cfg.tta,
        decontaminate=cfg.decontaminate,
        light_wrap=cfg.light_wrap,
        harmonize=cfg.harmonize,
        progress=cfg.progress,
        keep_partial_on_interrupt=cfg.keep_partial,
        framing=_framing(cfg),
        quality=cfg.quality,
        follow=cfg.follow,
        out=_output_options(cfg),
    )
    if result.frames == 1:  # an image: its time, not "1 frame (0.6 fps)"
        log.info("wrote %s in %.2f s", result.output, result.seconds)
    else:
        log.info(
            "wrote %s: %d frames in %.1f s (%.1f fps)",
            result.output,
            result.frames,
            result.seconds,
            result.fps,
        )
    return result


# ---------------------------------------------------------------------------- live


class LiveSource(Protocol):
    """What run_live reads: CameraSource, PacedFileSource, or a fake in tests."""

    def read(self, timeout: float | None = 1.0) -> Frame | None: ...

    def stop(self) -> None: ...


class ActionSource(Protocol):
    """Anything that hands the live loop action names ("next_background", "prev_background",
    "blur", "mirror", "pause", "quit"): the preview's hotkeys, a control socket."""

    def poll_actions(self) -> list[str]: ...


@dataclass
class LiveResult:
    frames: int  # frames processed and written
    dropped: int  # frames the source replaced before the loop picked them up
    seconds: float
    timer: StageTimer
    stopped_by: str  # "quit", "interrupt", "max_frames", "end"
    filler: int = 0  # frames sent to live outputs while the source gave none (an outage)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class LiveOptions:
    """How run_live runs (what `vbg run` flags say), checked before anything opens."""

    outputs: Sequence[Any] = ("vcam",)
    backgrounds: Sequence[str | BackgroundSpec] = ("blur",)
    size: tuple[int, int] = (1280, 720)  # (width, height) requested from a camera
    output_size: tuple[int, int] | None = None  # (width, height); None: the first frame's
    fps: float = 30.0
    mirror: bool = False
    show_fps: bool = False
    vcam_backend: str | None = None
    max_frames: int | None = None
    read_timeout: float = 1.0
    loop: bool = False  # a file as the camera: start again at its end
    keep_partial: bool = True  # a recording cut short (signal, error) is finalized, not removed
    # Camera outage: the last picture is repeated, dimmed with a notice after notice_after_s,
    # and replaced by the plain background after plain_after_s.
    notice_after_s: float = 1.0
    plain_after_s: float = 4.0
    # More action sources besides the preview (poll_actions(): vbg.control's socket, signals).
    action_sources: Sequence[ActionSource] = ()
    overwrite: bool = True  # a recording may replace an existing file


def _default_blur() -> BackgroundSpec:
    from vbg.backgrounds import BackgroundSpec

    return BackgroundSpec(kind="blur")


@dataclass
class _LiveState:
    """Everything the live loop changes while it runs."""

    opts: LiveOptions
    src: Any
    proc: FrameProcessor
    specs: list[BackgroundSpec]
    sinks: list[Any] = field(default_factory=list)
    live_sinks: list[Any] = field(default_factory=list)  # fed during pauses and outages
    previews: list[Any] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)  # output (width, height)
    period: float = 1 / 30
    bg_index: int = 0
    blur_on: bool = False
    blur_spec: BackgroundSpec = field(default_factory=lambda: _default_blur())
    paused: bool = False
    loop_mirror: bool = False
    t_origin: float = 0.0
    last_out: np.ndarray | None = None  # the processor's buffer: valid until the next frame
    overlay: np.ndarray | None = None  # --show-fps: a copy of the output to draw on
    last_real_t: float = 0.0  # when the last real frame was sent
    last_sent_t: float = 0.0  # when anything was last sent to the live outputs
    outage_frame: tuple[str, np.ndarray] | None = None  # (phase, picture) of this outage
    warned_size: tuple[int, int] | None = None
    fps_ema: float | None = None
    t_prev: float | None = None
    frames: int = 0
    filler: int = 0
    stopped_by: str = "end"


def _open_outputs(
    outputs: Sequence[Any], width: int, height: int, fps: float, vcam_backend: str | None
) -> list[Any]:
    """'vcam' / 'preview' / a video path / a ready sink object -> sinks. If one fails to
    open, those already open are closed (a recording is removed) before the error."""
    from vbg.sinks import PreviewSink, VideoFileSink, VirtualCameraSink

    sinks: list[Any] = []
    try:
        for out in outputs:
            if not isinstance(out, (str, Path)):
                sinks.append(out)
            elif str(out) == "vcam":
                sinks.append(VirtualCameraSink(width, height, fps, backend=vcam_backend))
            elif str(out) == "preview":
                sinks.append(PreviewSink("vbg"))
            elif Path(out).suffix.lower() in VIDEO_OUTPUT_SUFFIXES:
                sinks.append(VideoFileSink(out, fps=fps, width=width, height=height))
            else:
                raise VbgError(
                    f"unknown output '{out}'; use vcam, preview or a video file path "
                    f"({', '.join(VIDEO_OUTPUT_SUFFIXES)})"
                )
    except BaseException:
        _close_sinks(sinks, ok=False)
        raise
    return sinks


def _close_sinks(sinks: Sequence[Any], *, ok: bool) -> None:
    """Close every sink once; with ok=False a recording is aborted rather than finalized.
    The first error is re-raised after all sinks had their turn (only when ok)."""
    first: BaseException | None = None
    for s in sinks:
        try:
            if not ok and hasattr(s, "abort"):
                s.abort()
            else:
                s.close()
        except (VbgError, OSError) as e:
            first = first or e
    if first is not None and ok:
        raise first


def check_outputs(outputs: Sequence[Any], *, overwrite: bool = True) -> None:
    """Checks output names before a camera or model is opened (and, unless overwrite, that
    no recording would replace an existing file)."""
    from vbg.outputs import check_overwrite
    from vbg.sinks import check_output_path

    if not outputs:
        raise VbgError("no output: give --output vcam, preview or FILE.mp4")
    for out in outputs:
        if isinstance(out, (str, Path)) and str(out) not in ("vcam", "preview"):
            p = Path(out)
            if p.suffix.lower() not in VIDEO_OUTPUT_SUFFIXES:
                raise VbgError(
                    f"unknown output '{out}'; use vcam, preview or a video file path "
                    f"({', '.join(VIDEO_OUTPUT_SUFFIXES)})"
                )
            check_output_path(p)
            check_overwrite(p, overwrite=overwrite)


def run_live(
    source: int | str | LiveSource = 0,
    *,
    outputs: Sequence[Any] = ("vcam",),
    backgrounds: Sequence[str | BackgroundSpec] = ("blur",),
    size: tuple[int, int] = (1280, 720),
    fps: float = 30.0,
    mirror: bool = False,
    show_fps: bool = False,
    vcam_backend: str | None = None,
    max_frames: int | None = None,
    model: str | Path | None = None,
    engine: str = "auto",
    threads: int | None = None,
    temporal: TemporalConfig | None = None,
    edges: str = "guided",
    feather_px: int = 0,
    crf_every: int = 0,
    processor: FrameProcessor | None = None,
    read_timeout: float = 1.0,
    options: LiveOptions | None = None,
    framing: Framing | None = None,
    light_wrap: bool = True,
    harmonize: bool = False,
    follow: bool = True,
    controls: Sequence[Any] = (),
) -> LiveResult:
    """The live loop: source -> FrameProcessor -> every sink, until quit.

    source: a camera index / device path / URL (opened as CameraSource, its own capture
    thread, newest frame wins), a video file path (played in real time), or any object with
    read(timeout) -> Frame | None and stop() (PacedFileSource, a fake). size is (width,
    height) requested from a camera.
    outputs: "vcam", "preview", video file paths, or sink objects (write/close), combined.
    backgrounds: the list n/p cycle through in the preview; 'b' toggles blur.
    options: all of the above in one LiveOptions (then those keywords are ignored), plus the
    output size, looping and outage behaviour.
    A lost camera does not stop the loop: the live outputs keep receiving frames at the
    output rate (see LiveOptions) until it is back.
    Stops on a quit action, Ctrl-C / SIGTERM / SIGHUP, max_frames, or the source ending.
    framing: where image backgrounds put their landmark (vbg.framing).
    light_wrap / harmonize: the image-background stages of vbg.lightwrap / vbg.harmonize.
    follow: the network sees a crop around the person (vbg.roi).
    controls: more action sources (poll_actions(): vbg.control's socket, signals).
    """
    from vbg.backgrounds import parse_background

    opts = options or LiveOptions(
        outputs=outputs,
        backgrounds=backgrounds,
        size=size,
        fps=fps,
        mirror=mirror,
        show_fps=show_fps,
        vcam_backend=vcam_backend,
        max_frames=max_frames,
        read_timeout=read_timeout,
        action_sources=tuple(controls),
    )
    # Everything the user typed is checked before the camera or the model is opened.
    specs = [parse_background(b) if isinstance(b, str) else b for b in opts.backgrounds] or [
        parse_background("blur")
    ]
    check_outputs(opts.outputs, overwrite=opts.overwrite)
    if opts.max_frames is not None and opts.max_frames <= 0:
        raise VbgError(f"max_frames must be positive, not {opts.max_frames}")

    own_processor = processor is None
    if processor is None:
        processor = build_processor(
            model,
            engine=engine,
            threads=threads,
            background=specs[0],
            temporal=temporal,
            edges=edges,
            feather_px=feather_px,
            crf_every=crf_every,
            framing=framing,
            light_wrap=light_wrap,
            harmonize=harmonize,
            follow=follow,
        )
    else:
        processor.set_background(specs[0])
    if isinstance(processor, FrameProcessor):
        processor.wait_for_compile = False  # a new crop size never freezes the picture
    t_start = time.perf_counter()
    src: Any = None
    st: _LiveState | None = None
    try:
        src = _open_live_source(source, opts)
        st = _LiveState(opts=opts, src=src, proc=processor, specs=specs)
        _run_loop(st)
    finally:
        if own_processor:
            processor.close()
    seconds = time.perf_counter() - t_start if st.frames else 0.0
    dropped = int(getattr(src, "dropped", 0))
    log.info(
        "live: %d frames, %d dropped, %d filler, stopped by %s",
        st.frames,
        dropped,
        st.filler,
        st.stopped_by,
    )
    return LiveResult(st.frames, dropped, seconds, processor.timer, st.stopped_by, st.filler)


def _open_live_source(source: int | str | LiveSource, opts: LiveOptions) -> Any:
    """A camera spec or file path -> a started live source; a source object is used as is."""
    if isinstance(source, (int, str)):
        from vbg.sources import CameraSource, PacedFileSource, is_stream_url, parse_camera_spec

        spec = parse_camera_spec(source)
        if isinstance(spec, str) and not is_stream_url(spec) and not spec.startswith("/dev/"):
            src: Any = PacedFileSource(spec, loop=opts.loop, mirror=opts.mirror)
        else:
            src = CameraSource(spec, size=opts.size, fps=opts.fps, mirror=opts.mirror)
    else:
        src = source
        if opts.mirror and hasattr(src, "mirror"):
            src.mirror = True
    if hasattr(src, "start"):
        src.start()  # a camera that cannot be opened fails here
    return src


def _run_loop(st: _LiveState) -> None:
    """Opens the outputs on the first frame, runs frames until a stop, and shuts down:
    the source is released and every sink closed, whatever ended the loop."""
    src, opts = st.src, st.opts
    ok = True
    try:
        first = _first_frame(src, opts.read_timeout)
        if first is None:
            raise VbgError("the source delivered no frame")
        _start_outputs(st, first)
        frame: Frame | None = first
        while True:
            if apply_actions(st, [*st.previews, *opts.action_sources]):
                st.stopped_by = "quit"
                break
            if frame is None:
                frame = src.read(_read_timeout(st))
            if frame is None:
                if not getattr(src, "running", False):
                    st.stopped_by = "end"
                    if getattr(src, "finished", False):
                        log.info("%s: reached the end", getattr(src, "name", "the source"))
                    break
                _fill_gap(st)  # a camera reconnecting: keep the call fed
                continue
            _step(st, frame)
            frame = None
            if opts.max_frames is not None and st.frames >= opts.max_frames:
                st.stopped_by = "max_frames"
                break
    except KeyboardInterrupt as e:
        # Ctrl-C (or SIGTERM/SIGHUP, see vbg.signals) is the ordinary way to stop a live run.
        st.stopped_by = str(getattr(e, "signal_name", "") or "interrupt")
        ok = opts.keep_partial
    except BaseException:
        ok = opts.keep_partial  # a recording cut short by an error is still finalized
        _shutdown(st, ok=ok, quiet=True)
        raise
    _shutdown(st, ok=ok)


def _shutdown(st: _LiveState, *, ok: bool, quiet: bool = False) -> None:
    """Release the source, then finalize (ok) or remove recordings and close the rest."""
    try:
        if hasattr(st.src, "stop"):
            st.src.stop()
    finally:
        if quiet:
            with contextlib.suppress(VbgError, OSError):
                _close_sinks(st.sinks, ok=ok)
        else:
            _close_sinks(st.sinks, ok=ok)
        st.sinks = []


def _start_outputs(st: _LiveState, first: Frame) -> None:
    """The sinks, at the output size and rate, and the loop's clock."""
    from vbg.sinks import VideoFileSink

    opts = st.opts
    h, w = first.image.shape[:2]
    st.size = opts.output_size or (w, h)
    src_fps = float(getattr(st.src, "fps", None) or opts.fps)
    out_fps = src_fps if 1.0 <= src_fps <= 240.0 else opts.fps
    st.period = 1.0 / out_fps
    st.sinks = _open_outputs(opts.outputs, st.size[0], st.size[1], out_fps, opts.vcam_backend)
    st.previews = [s for s in st.sinks if hasattr(s, "poll_actions")]
    if opts.show_fps:
        for p in st.previews:
            p.show_overlay = True
    st.live_sinks = [s for s in st.sinks if not isinstance(s, VideoFileSink)]
    st.loop_mirror = opts.mirror and not hasattr(st.src, "mirror")
    st.t_origin = first.t_capture
    st.last_real_t = st.last_sent_t = time.perf_counter()
    st.proc.reset()  # a (re)started source: no state from a previous run


def apply_actions(st: _LiveState, sources: Sequence[ActionSource]) -> bool:
    """Acts on the pending actions of every action source; True when one asked to quit."""
    from vbg.backgrounds import BackgroundSpec

    quit_now = False
    for source in sources:
        for action in source.poll_actions():
            if action == "quit":
                quit_now = True
            elif action.startswith("blur:"):  # vbg ctl blur K: the strength, live
                k = _blur_strength(action)
                if k:
                    st.blur_spec, st.blur_on = BackgroundSpec(kind="blur", blur_ksize=k), True
                    st.proc.set_background(st.blur_spec)
            elif action.startswith("background:"):  # vbg ctl background NAME
                i = _named_background(action, st.specs)
                if i is not None:
                    st.bg_index, st.blur_on = i, False
                    st.proc.set_background(st.specs[i])
            elif action in ("next_background", "prev_background"):
                step = 1 if action == "next_background" else -1
                st.bg_index = (st.bg_index + step) % len(st.specs)
                st.blur_on = False
                st.proc.set_background(st.specs[st.bg_index])
            elif action == "blur":
                st.blur_on = not st.blur_on
                st.proc.set_background(st.blur_spec if st.blur_on else st.specs[st.bg_index])
            elif action == "mirror":
                if hasattr(st.src, "mirror"):
                    st.src.mirror = not st.src.mirror
                else:
                    st.loop_mirror = not st.loop_mirror
            elif action == "pause":
                st.paused = not st.paused
    return quit_now


def _fit_frame(st: _LiveState, image: np.ndarray) -> np.ndarray:
    """Mirror (when the source cannot) and scale to the output size: a camera that comes
    back at another size, or delivers another size than asked, is adapted to."""
    from vbg.backgrounds import cover_fit

    if st.loop_mirror:
        image = np.ascontiguousarray(image[:, ::-1])
    w, h = st.size
    if image.shape[:2] != (h, w):
        got = (image.shape[1], image.shape[0])
        if got != st.warned_size:
            st.warned_size = got
            log.info("the source delivers %dx%d; scaling to %dx%d", *got, w, h)
        image = cover_fit(image, h, w)
    return image


def _step(st: _LiveState, frame: Frame) -> None:
    """One real frame: process it and write it to every sink."""
    from vbg.sinks import overlay_text

    timer = st.proc.timer
    t_pick = time.perf_counter()
    if st.paused and st.last_out is not None:
        # Keep the virtual camera and preview fed with the frozen picture; the recording
        # simply pauses.
        _send_live(st, st.last_out)
        return
    timer.add("capture", (t_pick - frame.t_capture) * 1000.0)
    out = st.proc.process(_fit_frame(st, frame.image))
    status = _status_line(st.fps_ema, timer)
    if st.opts.show_fps and not st.previews:
        # The processor's output is read-only (the compositor keeps the still background
        # in it between frames): the status line goes on a copy.
        if st.overlay is None or st.overlay.shape != out.shape:
            st.overlay = np.empty_like(out)
        np.copyto(st.overlay, out)
        out = st.overlay
        overlay_text(out, status)
    label = _background_label(st.blur_spec if st.blur_on else st.specs[st.bg_index])
    for p in st.previews:
        p.set_status(status)
        if hasattr(p, "set_title"):  # the active background and the hotkeys
            p.set_title(f"vbg: {label}  |  {HOTKEY_LEGEND}")
    with timer.stage("output"):
        pts = frame.t_capture - st.t_origin
        for s in st.sinks:
            s.write(out, pts)
    t_done = time.perf_counter()
    timer.samples[GLASS_TO_GLASS].append((t_done - frame.t_capture) * 1000.0)
    timer.end_frame()
    if st.outage_frame is not None:
        log.info("frames are flowing again")
    st.last_out, st.outage_frame = out, None
    st.last_real_t = st.last_sent_t = t_done
    st.frames += 1
    if st.frames % 1000 == 0:
        _bound_samples(timer)
    if st.t_prev is not None:
        inst = 1.0 / max(t_done - st.t_prev, 1e-6)
        st.fps_ema = inst if st.fps_ema is None else 0.9 * st.fps_ema + 0.1 * inst
    st.t_prev = t_done


def _bound_samples(timer: StageTimer) -> None:
    """A live run may last all day: keep the per-frame timings of the last
    LIVE_SAMPLE_WINDOW frames only (the summary is then over those), so memory stays flat."""
    for values in timer.samples.values():
        if len(values) > LIVE_SAMPLE_WINDOW:
            del values[: len(values) - LIVE_SAMPLE_WINDOW]


def _read_timeout(st: _LiveState) -> float:
    """How long to wait for the source: with live outputs, only until the next frame is due
    on them (so an outage never leaves a gap), otherwise the plain read timeout."""
    if not st.live_sinks:
        return st.opts.read_timeout
    return max(0.001, st.last_sent_t + st.period - time.perf_counter())


def _send_live(st: _LiveState, picture: np.ndarray) -> None:
    for s in st.live_sinks:
        s.write(picture)
    st.last_sent_t = time.perf_counter()


def _fill_gap(st: _LiveState) -> None:
    """No frame from the source this period: send the live outputs a stand-in so the call
    never freezes or drops the camera: first the last picture (a hiccup looks like nothing),
    then that picture dimmed with a notice, then the plain background with the notice."""
    now = time.perf_counter()
    if st.last_out is None or not st.live_sinks or now - st.last_sent_t < 0.9 * st.period:
        return
    gap = now - st.last_real_t
    opts = st.opts
    if gap < opts.notice_after_s:
        picture = st.last_out
    else:
        phase = "dim" if gap < opts.plain_after_s else "plain"
        if st.outage_frame is None or st.outage_frame[0] != phase:
            if st.outage_frame is None:
                log.warning("no frames from the source; the virtual camera shows a notice")
            st.outage_frame = (phase, _outage_picture(st, phase))
        picture = st.outage_frame[1]
    _send_live(st, picture)
    st.filler += 1


def _outage_picture(st: _LiveState, phase: str) -> np.ndarray:
    """The last composite dimmed ("dim"), or the plain background ("plain"), with a notice."""
    import cv2

    from vbg.sinks import overlay_text

    assert st.last_out is not None
    base = st.last_out
    comp = st.proc.compositor
    if phase == "plain" and comp is not None and comp.background.shape == base.shape:
        picture = comp.background.copy()
    else:
        picture = cv2.convertScaleAbs(base, alpha=0.45)
    h = picture.shape[0]
    overlay_text(picture, "camera reconnecting...", origin=(10, max(24, h - 16)))
    return picture


HOTKEY_LEGEND = "n/p background  b blur  m mirror  space pause  f fps  q quit"


def _background_label(spec: Any) -> str:
    """A short name for the window title: a bundled name or file stem, blur:K, color:#..."""
    return Path(spec.path).stem if spec.kind == "image" else spec.describe()


def _blur_strength(action: str) -> int | None:
    arg = action.split(":", 1)[1]
    if not arg.isdigit() or int(arg) < 1:
        log.warning("control: bad blur strength %r", arg)
        return None
    return int(arg)


def _named_background(action: str, specs: list[Any]) -> int | None:
    """background:NAME -> its index in specs (appended when new); None and a warning when
    NAME is no background (a typo must not stop the camera)."""
    from vbg.backgrounds import parse_background

    try:
        spec = parse_background(action.split(":", 1)[1])
    except VbgError as e:
        log.warning("control: %s", e)
        return None
    if spec not in specs:
        specs.append(spec)
    return specs.index(spec)


def _first_frame(src: Any, timeout: float) -> Frame | None:
    deadline = time.perf_counter() + FIRST_FRAME_TIMEOUT_S
    while time.perf_counter() < deadline:
        frame = src.read(timeout)
        if frame is not None:
            return frame
        if not getattr(src, "running", False):
            return None
    raise VbgError(f"no frame from the source in {FIRST_FRAME_TIMEOUT_S:.0f} s")


def _status_line(fps: float | None, timer: StageTimer) -> str:
    g2g = timer.samples.get(GLASS_TO_GLASS)
    inf = timer.samples.get("inference")
    parts = [f"{fps:5.1f} fps" if fps else "  -.- fps"]
    if g2g:
        parts.append(f"latency {g2g[-1]:4.0f} ms")
    if inf:
        parts.append(f"inference {inf[-1]:4.1f} ms")
    return "  ".join(parts)


def _open_controls(cfg: RunConfig) -> list[Any]:
    """The control socket (vbg ctl) and SIGUSR1/SIGUSR2, unless --no-control."""
    from vbg.control import ControlSocket, SignalActions

    if not cfg.control:
        return []
    controls: list[Any] = [SignalActions()]
    try:
        sock = ControlSocket(None if cfg.control is True else cfg.control)
    except VbgError as e:  # steering is a convenience: the camera runs without it
        log.warning("%s; vbg ctl will not reach this run", e)
    else:
        controls.append(sock)
        log.info("control: vbg ctl next|prev|blur [K]|pause|background NAME (%s)", sock.path)
    return controls


def run_config(cfg: RunConfig) -> LiveResult:
    """`vbg run` from its resolved config. The outputs are always at --size: a camera that
    delivers another size, or comes back at one, is scaled to it. The control socket and
    signals (vbg.control) steer it while it runs."""
    controls = _open_controls(cfg)
    try:
        return _run_config(cfg, controls)
    finally:
        for c in controls:
            c.close()


def _run_config(cfg: RunConfig, controls: list[Any]) -> LiveResult:
    options = LiveOptions(
        action_sources=tuple(controls),
        overwrite=cfg.overwrite,
        outputs=cfg.output,
        backgrounds=cfg.background,
        size=cfg.size,
        output_size=cfg.size,
        fps=cfg.fps,
        mirror=cfg.mirror,
        show_fps=cfg.show_fps,
        vcam_backend=cfg.vcam_backend,
        max_frames=cfg.max_frames,
        loop=cfg.loop,
        keep_partial=cfg.keep_partial,
    )
    result = run_live(
        cfg.camera,
        model=cfg.model,
        engine=cfg.engine,
        threads=cfg.threads,
        temporal=_temporal_config(cfg),
        edges=cfg.edges,
        feather_px=cfg.feather_px,
        crf_every=cfg.crf_every,
        options=options,
        framing=_framing(cfg),
        light_wrap=cfg.light_wrap,
        harmonize=cfg.harmonize,
        follow=cfg.follow,
    )
    summary = result.timer.summary()
    if GLASS_TO_GLASS in summary:
        g = summary[GLASS_TO_GLASS]
        log.info(
            "%.1f fps; glass-to-glass latency p50 %.0f ms, p95 %.0f ms",
            result.fps,
            g["p50"],
            g["p95"],
        )
    return result

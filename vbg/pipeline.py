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

import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import numpy as np

from vbg import VbgError
from vbg.timing import StageTimer

if TYPE_CHECKING:
    from vbg.backgrounds import BackgroundSpec
    from vbg.compose import Compositor
    from vbg.config import ProcessConfig, RunConfig
    from vbg.edges import EdgeColors
    from vbg.framing import Framing
    from vbg.outputs import OutputOptions
    from vbg.refine import Refiner
    from vbg.segmenter import Segmenter
    from vbg.sources import Frame
    from vbg.temporal import TemporalConfig, TemporalSmoother

log = logging.getLogger(__name__)

VIDEO_OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
GLASS_TO_GLASS = "glass_to_glass"
FIRST_FRAME_TIMEOUT_S = 10.0


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
    framing: Framing | None = None  # where image backgrounds put their landmark

    @property
    def engine_name(self) -> str:
        return str(getattr(self.segmenter.engine, "name", type(self.segmenter.engine).__name__))

    def probability(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Person probability at model resolution (before smoothing)."""
        seg, t = self.segmenter, self.timer
        if not self.tta:
            return seg(frame_bgr, timer=t)
        # Test-time augmentation: average with the prediction of the mirrored frame.
        # Mirroring the preprocessed tensor equals preprocessing the mirrored frame
        # (resizing is symmetric) and costs a small copy instead of a full-frame flip.
        with t.stage("preprocess"):
            x = seg.prepare(frame_bgr)
            x_flip = np.ascontiguousarray(x[:, :, :, ::-1])
        with t.stage("inference"):
            prob = seg.infer(x)
            prob += seg.infer(x_flip)[:, ::-1]
            prob *= 0.5
        return prob

    def mask(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Alpha matte uint8 HxW (255 = person) at frame resolution: exactly what is
        composited, and what `vbg eval` scores."""
        prob = self.probability(frame_bgr)
        with self.timer.stage("smoothing"):
            if self.smoother is not None:
                prob = self.smoother(prob)
            return self.refiner(prob, frame_bgr)

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
                    self.background, frame_bgr.shape[:2], framing=self.framing
                )
            if self.edge_colors is not None:
                frame_bgr = self.edge_colors(frame_bgr, alpha)
            return self.compositor(frame_bgr, alpha, t)

    def reset(self) -> None:
        """Forget temporal state: a scene cut, a seek, a new still image, a restarted source."""
        if self.smoother is not None:
            self.smoother.reset()
        self.refiner.reset()

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
    timer: StageTimer | None = None,
    framing: Framing | None = None,
) -> FrameProcessor:
    """A FrameProcessor for the model card at `model` (None = the bundled default model).

    background: a --background string, a parsed spec, or None (mask only, e.g. for eval).
    size: the frame size (height, width) when known: the compositor is made (and the
    background fitted) now rather than on the first frame. Everything a user typed is checked before the model loads.
    """
    from vbg.backgrounds import parse_background
    from vbg.card import load_card
    from vbg.edges import EdgeColors
    from vbg.engines import create_engine
    from vbg.refine import Refiner
    from vbg.segmenter import Segmenter
    from vbg.temporal import TemporalConfig, TemporalSmoother

    spec = parse_background(background) if isinstance(background, str) else background
    try:
        tcfg = temporal or TemporalConfig()
        refiner = Refiner(feather_px=feather_px, crf_every=crf_every, edges=edges)
    except ValueError as e:
        raise VbgError(f"bad smoothing option: {e}") from e
    card = load_card(_card_path(model))
    eng = create_engine(engine, card, threads=threads, device=device)
    try:
        proc = FrameProcessor(
            segmenter=Segmenter(card, eng),
            smoother=TemporalSmoother(tcfg) if smoothing else None,
            refiner=refiner,
            timer=timer or StageTimer(),
            background=spec,
            tta=tta,
            edge_colors=EdgeColors() if decontaminate else None,
            framing=framing,
        )
        if spec is not None and size is not None:
            from vbg.compose import Compositor

            proc.compositor = Compositor(spec, size, framing=framing)
    except BaseException:
        eng.close()
        raise
    return proc


def _card_path(model: str | Path | None) -> Path:
    if model is not None:
        return Path(model).expanduser()
    from vbg.assets import default_card_path

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
            ema=cfg.ema, open_px=cfg.open_px, close_px=cfg.close_px, cut_threshold=cfg.cut_threshold
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
    progress: bool = True,
    keep_partial_on_interrupt: bool = False,
    processor: FrameProcessor | None = None,
    framing: Framing | None = None,
    out: OutputOptions | None = None,
) -> ProcessResult:
    """Replaces the background of every frame of a video (or of one image) into `output`.

    Video: H.264 MP4 with the input's frame count, timestamps and audio (copied). The file
    is written under a temporary name and renamed when complete; on any error nothing is
    left behind. On Ctrl-C the partial file is removed, or with keep_partial_on_interrupt
    finalized as a valid shorter file; KeyboardInterrupt is re-raised either way.
    Image input: an image output (png/jpg/...), written atomically.
    processor: a ready FrameProcessor (its background is replaced by `background`).
    out: the output mode (composite, mask, alpha), H.264 quality and overwriting (see
    vbg.outputs); default: a composite at the default quality, replacing an existing file.
    """
    from vbg.outputs import OutputOptions, check_alpha_output, check_output_path, renderer
    from vbg.sinks import ImageSink, VideoFileSink
    from vbg.sources import ImageSource, open_input

    out = out or OutputOptions(overwrite=True)
    input, output = Path(input), Path(output)
    src = open_input(input)  # missing / corrupt input fails here, before anything is made
    try:
        if output.exists() and output.resolve() == input.resolve():
            raise VbgError(f"output {output} is the input file; choose another name")
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
        if not output.parent.is_dir():
            raise VbgError(f"output folder does not exist: {output.parent}")
        check_output_path(output, overwrite=out.overwrite)

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
                framing=framing,
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
                sink = VideoFileSink(
                    output,
                    fps=src.fps,
                    width=src.width,
                    height=src.height,
                    audio_from=input if src.has_audio else None,
                    crf=out.crf,
                    preset=out.preset,
                )
            return _process_frames(
                src, sink, processor, progress, keep_partial_on_interrupt, render
            )
        finally:
            if own:
                processor.close()
    finally:
        src.close()


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
    timer = proc.timer
    render = render or proc.process  # frame -> what the sink writes (vbg.outputs.renderer)
    bar = Progress(src.frame_count, enabled=progress, label=Path(sink.path).name)
    t0 = time.perf_counter()
    proc.reset()  # a new video: no state from whatever ran before
    frames = iter(src)
    try:
        while True:
            with timer.stage("capture"):  # decoding
                frame: Frame | None = next(frames, None)
            if frame is None:
                break
            out = render(frame.image, frame.pts)
            with timer.stage("output"):
                sink.write(out, frame.pts)
            timer.end_frame()
            bar.update()
        bar.close()
        sink.close()  # renames the finished file into place
    except KeyboardInterrupt:
        bar.close()
        # The CLI prints one line, "vbg: interrupted: <this message>".
        if keep_partial and sink.frames_written > 0:
            sink.close(trim_audio=True)
            raise KeyboardInterrupt(
                f"kept the first {sink.frames_written} frames in {sink.path}"
            ) from None
        sink.abort()
        raise KeyboardInterrupt(f"{sink.path} not written") from None
    except BaseException:
        bar.close()
        sink.abort()
        raise
    return ProcessResult(Path(sink.path), sink.frames_written, time.perf_counter() - t0, timer)


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
        progress=cfg.progress,
        keep_partial_on_interrupt=cfg.keep_partial,
        framing=_framing(cfg),
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


@dataclass
class LiveResult:
    frames: int  # frames processed and written
    dropped: int  # frames the source replaced before the loop picked them up
    seconds: float
    timer: StageTimer
    stopped_by: str  # "quit", "interrupt", "max_frames", "end"

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


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
    """Close every sink once; on failure a recording is aborted rather than finalized.
    The first error is re-raised after all sinks had their turn."""
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
    from vbg.outputs import check_output_path

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
            if not p.parent.is_dir():
                raise VbgError(f"output folder does not exist: {p.parent}")
            check_output_path(p, overwrite=overwrite)


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
    framing: Framing | None = None,
    overwrite: bool = True,
    controls: Sequence[Any] = (),
) -> LiveResult:
    """The live loop: source -> FrameProcessor -> every sink, until quit.

    source: a camera index / device path / URL (opened as CameraSource, its own capture
    thread, newest frame wins), or any object with read(timeout) -> Frame | None and stop()
    (PacedFileSource, a fake). size is (width, height) requested from a camera.
    outputs: "vcam", "preview", video file paths, or sink objects (write/close), combined.
    backgrounds: the list n/p cycle through in the preview; 'b' toggles blur.
    controls: more action sources (poll_actions(), e.g. vbg.control's socket and signals).
    Stops on the preview's q/Esc or window close, Ctrl-C, max_frames, or the source ending.
    """
    from vbg.backgrounds import BackgroundSpec, parse_background
    from vbg.sinks import VideoFileSink, overlay_text

    # Everything the user typed is checked before the camera or the model is opened.
    specs = [parse_background(b) if isinstance(b, str) else b for b in backgrounds] or [
        parse_background("blur")
    ]
    check_outputs(outputs, overwrite=overwrite)
    if max_frames is not None and max_frames <= 0:
        raise VbgError(f"max_frames must be positive, not {max_frames}")

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
        )
    else:
        processor.set_background(specs[0])
    timer = processor.timer
    own_source = isinstance(source, (int, str))
    sinks: list[Any] = []
    ok = False
    stopped_by = "end"
    frames = 0
    t_start = time.perf_counter()
    try:
        if own_source:
            from vbg.sources import CameraSource

            src: Any = CameraSource(source, size=size, fps=fps, mirror=mirror)
        else:
            src = source
            if mirror and hasattr(src, "mirror"):
                src.mirror = True
        loop_mirror = mirror and not hasattr(src, "mirror")
        if hasattr(src, "start"):
            src.start()  # a camera that cannot be opened fails here
        try:
            first = _first_frame(src, read_timeout)
            if first is None:
                raise VbgError("the source delivered no frame")
            h, w = first.image.shape[:2]
            out_fps = float(getattr(src, "fps", None) or fps)
            sinks = _open_outputs(outputs, w, h, out_fps, vcam_backend)
            previews = [s for s in sinks if hasattr(s, "poll_actions")]
            if show_fps:
                for p in previews:
                    p.show_overlay = True
            live_sinks = [s for s in sinks if not isinstance(s, VideoFileSink)]

            bg_index, blur_on, paused = 0, False, False
            blur_spec = BackgroundSpec(kind="blur")
            t_origin = first.t_capture
            fps_ema: float | None = None
            t_prev: float | None = None
            last_out: np.ndarray | None = None
            frame: Frame | None = first
            processor.reset()  # a (re)started source: no state from a previous run
            while True:
                # --- hotkeys ---------------------------------------------------------------
                quit_now = False
                for p in [*previews, *controls]:
                    for action in p.poll_actions():
                        if action == "quit":
                            quit_now = True
                        elif action.startswith("blur:"):  # vbg ctl blur K: live strength
                            k = _blur_strength(action)
                            if k:
                                blur_spec, blur_on = BackgroundSpec(kind="blur", blur_ksize=k), True
                                processor.set_background(blur_spec)
                        elif action.startswith("background:"):  # vbg ctl background NAME
                            i = _named_background(action, specs)
                            if i is not None:
                                bg_index, blur_on = i, False
                                processor.set_background(specs[i])
                        elif action in ("next_background", "prev_background"):
                            step = 1 if action == "next_background" else -1
                            bg_index = (bg_index + step) % len(specs)
                            blur_on = False
                            processor.set_background(specs[bg_index])
                        elif action == "blur":
                            blur_on = not blur_on
                            processor.set_background(blur_spec if blur_on else specs[bg_index])
                        elif action == "mirror":
                            if hasattr(src, "mirror"):
                                src.mirror = not src.mirror
                            else:
                                loop_mirror = not loop_mirror
                        elif action == "pause":
                            paused = not paused
                if quit_now:
                    stopped_by = "quit"
                    break

                # --- next frame ------------------------------------------------------------
                if frame is None:
                    frame = src.read(read_timeout)
                    if frame is None:
                        if getattr(src, "running", False):
                            continue  # a camera reconnecting: keep the window alive
                        stopped_by = "end"
                        break
                t_pick = time.perf_counter()
                if paused and last_out is not None:
                    # Keep the virtual camera and preview fed with the frozen picture; the
                    # recording simply pauses.
                    for s in live_sinks:
                        s.write(last_out)
                    frame = None
                    continue
                timer.add("capture", (t_pick - frame.t_capture) * 1000.0)
                image = frame.image
                if loop_mirror:
                    image = np.ascontiguousarray(image[:, ::-1])
                if image.shape[:2] != (h, w):
                    raise VbgError(
                        f"the source changed frame size from {w}x{h} to "
                        f"{image.shape[1]}x{image.shape[0]}"
                    )
                out = processor.process(image)
                status = _status_line(fps_ema, timer)
                if show_fps and not previews:
                    overlay_text(out, status)
                label = _background_label(blur_spec if blur_on else specs[bg_index])
                for p in previews:
                    p.set_status(status)
                    if hasattr(p, "set_title"):  # the active background and the hotkeys
                        p.set_title(f"vbg: {label}  |  {HOTKEY_LEGEND}")
                with timer.stage("output"):
                    pts = frame.t_capture - t_origin
                    for s in sinks:
                        s.write(out, pts)
                t_done = time.perf_counter()
                timer.samples[GLASS_TO_GLASS].append((t_done - frame.t_capture) * 1000.0)
                timer.end_frame()
                last_out = out
                frames += 1
                if t_prev is not None:
                    inst = 1.0 / max(t_done - t_prev, 1e-6)
                    fps_ema = inst if fps_ema is None else 0.9 * fps_ema + 0.1 * inst
                t_prev = t_done
                frame = None
                if max_frames is not None and frames >= max_frames:
                    stopped_by = "max_frames"
                    break
            ok = True
        except KeyboardInterrupt:
            # Ctrl-C is the ordinary way to stop a live run: finish the recording properly.
            stopped_by = "interrupt"
            ok = True
        finally:
            if hasattr(src, "stop"):
                src.stop()
    finally:
        try:
            _close_sinks(sinks, ok=ok)
        finally:
            if own_processor:
                processor.close()
    seconds = time.perf_counter() - t_start if frames else 0.0
    dropped = int(getattr(src, "dropped", 0))
    log.info("live: %d frames, %d dropped, stopped by %s", frames, dropped, stopped_by)
    return LiveResult(frames, dropped, seconds, timer, stopped_by)


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
    """`vbg run` from its resolved config."""
    controls = _open_controls(cfg)
    try:
        return _run_config(cfg, controls)
    finally:
        for c in controls:
            c.close()


def _run_config(cfg: RunConfig, controls: list[Any]) -> LiveResult:
    result = run_live(
        cfg.camera,
        outputs=cfg.output,
        backgrounds=cfg.background,
        size=cfg.size,
        fps=cfg.fps,
        mirror=cfg.mirror,
        show_fps=cfg.show_fps,
        vcam_backend=cfg.vcam_backend,
        max_frames=cfg.max_frames,
        model=cfg.model,
        engine=cfg.engine,
        threads=cfg.threads,
        temporal=_temporal_config(cfg),
        edges=cfg.edges,
        feather_px=cfg.feather_px,
        crf_every=cfg.crf_every,
        framing=_framing(cfg),
        overwrite=cfg.overwrite,
        controls=controls,
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

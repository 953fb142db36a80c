"""The `vbg` command: thin argparse subcommands over library functions.

Each handler turns flags (+ an optional TOML config) into a config object and calls one
library function. Nothing heavy is imported at module level, so `vbg --help` is instant:
the pipeline, engines and bench are imported inside the handlers that use them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vbg import VbgError, __version__

ENGINE_CHOICES_HELP = "auto|onnxruntime|openvino|torch|tensorrt"

MAIN_EPILOG = """\
examples:
  vbg process talk.mp4 -o talk-paris.mp4 --background paris-eiffel-tower
  vbg process photo.jpg -o photo-blur.png --background blur
  vbg run --camera 0 --size 1280x720 --output vcam --output preview
  vbg backgrounds
  vbg doctor                  # is the virtual camera set up? prints the fixes
  vbg cameras
  vbg eval --ann splits/test.json --images data/persons --json eval.json
  vbg bench --help

Run `vbg COMMAND --help` for the options of a command."""

PROCESS_EPILOG = """\
examples:
  vbg process talk.mp4 -o out.mp4                                  # blurred background
  vbg process talk.mp4 -o out.mp4 --background paris-eiffel-tower  # a bundled background
  vbg process talk.mp4 -o out.mp4 --background ~/Pictures/beach.jpg
  vbg process talk.mp4 -o out.mp4 --background color:#00b140       # green screen
  vbg process talk.mp4 -o out.mp4 --no-tta                        # ~1.4x faster, live-path edges
  vbg process talk.mp4 -o out.mp4 --quality high                  # + the high-quality model, slower
  vbg process talk.mp4 -o out.mp4 --config vbg.toml --engine onnxruntime
  vbg process talk.mp4 -o person.webm --output-alpha              # transparent background
  vbg process talk.mp4 -o matte.mp4 --mask-only --overwrite
  vbg process recordings/ -o done/ --jobs 2                     # every file of a folder
  vbg process a.mp4 b.mp4 -o done/ --ray auto                   # one Ray task per file

The output is H.264 MP4 with the input's frame count, frame rate and duration and its
audio track copied. It is written under a temporary name and appears only when complete;
Ctrl-C, SIGTERM or SIGHUP remove the partial file (with --keep-partial it finalizes a
shorter valid file); so does an input that stops decoding part-way (exit status 1).
Image inputs (jpg, png, ...) give an image output."""

RUN_EPILOG = """\
examples:
  vbg run                                                # camera 0 -> virtual camera
  vbg run --camera /dev/video2 --size 1920x1080 --fps 30
  vbg run --output preview --background blur --background paris-eiffel-tower
  vbg run --output vcam --output preview --output call.mp4 --mirror --show-fps
  vbg run --camera talk.mp4 --loop --output vcam          # a video file as the camera

Outputs combine: `vcam` (a virtual camera for Zoom/Meet/OBS; on Linux it needs
v4l2loopback: sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=vbg),
`preview` (a window) and any FILE.mp4 (a recording).
Preview hotkeys: n/p next/previous background, b blur, m mirror, space pause,
f FPS/latency line, q or Esc quit. Ctrl-C, SIGTERM and SIGHUP stop too, finalizing
recordings. A lost camera is retried until it is back; meanwhile the virtual camera shows
the last picture, dimmed, with a notice. --camera FILE plays a video at its own rate
(--loop to repeat it); the outputs are always --size."""

BACKGROUNDS_EPILOG = """\
examples:
  vbg backgrounds
  vbg process in.mp4 -o out.mp4 --background NAME

Besides these names, --background takes any image path, a video (mp4, webm, gif, ...:
it loops behind the person), `blur` (or blur:K for kernel size K) or `color:#RRGGBB`."""

EVAL_EPILOG = """\
examples:
  vbg eval --ann data/persons/annotations/instances_persons.json --images data/persons
  vbg eval --ann runs/r1/splits/test.json --images data/persons --model runs/r1/model.json \\
           --engine onnxruntime --json eval.json

The ground truth is the union of each image's person (category 1) annotations, crowd
regions included. Predictions go through the same path as `vbg process` (preprocessing,
engine, temporal smoothing, upsampling to the full frame) thresholded at 0.5. Images that
share a `group` are frames of one video, run in file-name order with temporal smoothing,
and also give the flicker metric dtSSD. Reports per-image means of IoU, Dice and pixel
accuracy, overall and per `source`."""

CONFIG_HELP = (
    "TOML file with any of this command's options (same names as the flags, e.g. "
    'engine = "onnxruntime"; a [process] or [run] table applies to that command only); '
    "flags given on the command line override it"
)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-wrapped examples in epilogs, and a wider option column."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        metavar="CARD",
        default=None,
        help="model card JSON (weights beside it); default: the bundled model",
    )
    g.add_argument(
        "--engine",
        metavar="NAME",
        default=None,
        help=f"inference engine: {ENGINE_CHOICES_HELP} (default: auto = fastest available)",
    )
    g.add_argument(
        "--threads",
        type=int,
        metavar="N",
        default=None,
        help="CPU threads for inference (default: the engine's choice)",
    )
    g.add_argument(
        "--follow",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the network on a crop that follows the person (about the same input size; "
        "a standing or distant person gets several times the pixels): test video IoU 0.834 -> 0.852, "
        "boundary IoU 0.44 -> 0.50, for ~1 ms a frame where it crops; the whole frame is "
        "checked every 30 frames for anyone outside the crop; stills, close-ups and seated "
        "upper bodies see the whole frame (default: on)",
    )


def _many_files_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("many files (several INPUTs or a folder)")
    g.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        default=None,
        help="files processed at once, each in its own process (default: one per GPU, or "
        "1 without a GPU: the engine already uses every core)",
    )
    g.add_argument(
        "--ray",
        metavar="ADDRESS",
        nargs="?",
        const="",
        default=None,
        help="run one Ray task per file (pip install 'vbg[cluster]'): on the cluster at "
        "ADDRESS (auto, ray://host:10001), or without ADDRESS on a local one-node cluster; "
        "paths must be on storage every node sees",
    )


def _framing_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("background framing")
    g.add_argument(
        "--background-align",
        choices=("auto", "left", "right", "center"),
        default=None,
        help="where a background's landmark goes: beside the person on the left or right, "
        "auto (the side with more room, from the first frame; default) or center (plain "
        "centred crop)",
    )
    g.add_argument(
        "--background-zoom",
        type=float,
        metavar="Z",
        default=None,
        help="zoom into the background image, 1..4 (default: as little as the alignment "
        "needs, at most 1.2)",
    )


def _file_output_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output file")
    g.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="replace an existing output (default: refuse, before any work starts)",
    )
    g.add_argument(
        "--crf",
        type=int,
        metavar="Q",
        default=None,
        help="H.264 quality, 0..51, lower = better and bigger (default 18: about the "
        "input's quality)",
    )
    g.add_argument(
        "--preset",
        metavar="NAME",
        default=None,
        help="x264 preset: ultrafast .. veryslow; slower = smaller for the same quality "
        "(default veryfast)",
    )
    g.add_argument(
        "--mask-only",
        action="store_true",
        default=None,
        help="write the alpha matte (white = person) instead of the composite",
    )
    g.add_argument(
        "--output-alpha",
        action="store_true",
        default=None,
        help="write the person on a transparent background: -o out.webm (VP9 with alpha), "
        "out.mov (ProRes 4444), a folder (PNG sequence) or, for an image, out.png",
    )


def _look_options(p: argparse.ArgumentParser) -> None:
    """How the person sits in the new scene (process and run)."""
    p.add_argument(
        "--light-wrap",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="image backgrounds: wrap a little of the scene's light around the person's edge "
        "(default: on; never for color: or blur)",
    )
    p.add_argument(
        "--harmonize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="image backgrounds: shift the person's overall tone and white balance toward the "
        "scene's (default: off)",
    )


def _temporal_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mask smoothing and edges")
    g.add_argument(
        "--smoothing",
        choices=("adaptive", "ema"),
        default=None,
        help="temporal smoothing: adaptive (follows motion, damps still edges; default) "
        "or ema (a plain moving average with weight --ema)",
    )
    g.add_argument(
        "--ema",
        type=float,
        metavar="W",
        default=None,
        help="--smoothing ema: weight of the new frame in the moving average, 0..1 "
        "(default 0.5; 1 = off)",
    )
    g.add_argument(
        "--open-px",
        type=int,
        metavar="PX",
        default=None,
        help="morphological opening radius (default 1)",
    )
    g.add_argument(
        "--close-px",
        type=int,
        metavar="PX",
        default=None,
        help="morphological closing radius (default 1)",
    )
    g.add_argument(
        "--cut-threshold",
        type=float,
        metavar="T",
        default=None,
        help="mean mask change treated as a scene cut, which resets smoothing (default 0.35)",
    )
    g.add_argument(
        "--edges",
        choices=("guided", "bilinear"),
        default=None,
        help="how the mask is upsampled to the frame: guided (a guided filter puts the "
        "outline on the image's own edges; default) or bilinear",
    )
    g.add_argument(
        "--feather-px", type=int, metavar="PX", default=None, help="edge feathering (default 0)"
    )
    g.add_argument(
        "--crf-every",
        type=int,
        metavar="N",
        default=None,
        help="DenseCRF edge refinement every N frames, 0 = off (default 0; needs vbg[crf])",
    )


def build_parser(*, with_bench: bool = False) -> argparse.ArgumentParser:
    """The whole command line. with_bench: also import vbg.bench for `bench`'s own flags
    (only when that command is used, so other commands never pay for its imports)."""
    parser = argparse.ArgumentParser(
        prog="vbg",
        description="Real-time virtual background: replace or blur what is behind a person, "
        "in a live camera feed or a recorded video.",
        epilog=MAIN_EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"vbg {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    # ------------------------------------------------------------------ process
    p = sub.add_parser(
        "process",
        help="replace the background of a video or image file",
        description="Replace the background of a recorded video (or an image), frame by frame.",
        epilog=PROCESS_EPILOG,
        formatter_class=_Formatter,
    )
    p.add_argument(
        "input",
        metavar="INPUT",
        nargs="+",
        help="video (mp4, mov, mkv, ...) or image (jpg, png); several files or a folder "
        "process each (-o is then a folder)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="OUTPUT",
        default=None,
        help="output file: .mp4 for a video input, .png/.jpg for an image (required); "
        "a folder for several inputs",
    )
    p.add_argument(
        "--background",
        "-b",
        metavar="BG",
        default=None,
        help="a bundled name (see `vbg backgrounds`), an image or video path (a video "
        "loops), blur, blur:K or color:#RRGGBB (default: blur)",
    )
    _framing_options(p)
    _file_output_options(p)
    _model_options(p)
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="test-time augmentation: average with a mirrored pass; better edges for a second "
        "inference per frame (default: on, the offline mode; --no-tta, the live path, makes a "
        "720p run ~1.4x faster on 2 cores: decoding, compositing and encoding are not doubled)",
    )
    _quality_option(p, None)
    p.add_argument(
        "--decontaminate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="recolour the soft edge with the person's own colours so no fringe of the old "
        "background shows (default: on; ~7%% of a 720p run's CPU time on 2 cores, computed "
        "at a quarter of the resolution)",
    )
    p.add_argument(
        "--keep-partial",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="when stopped early (Ctrl-C, SIGTERM, SIGHUP, an input that stops decoding), "
        "finalize a valid shorter file instead of removing it",
    )
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        default=None,
        help="no progress bar (it is only shown on a terminal anyway)",
    )
    _look_options(p)
    _temporal_options(p)
    _many_files_options(p)
    p.add_argument("--config", metavar="FILE.toml", default=None, help=CONFIG_HELP)
    p.set_defaults(func=_cmd_process)

    # ------------------------------------------------------------------ run
    p = sub.add_parser(
        "run",
        help="live: camera -> virtual camera / preview window / recording",
        description="Live virtual background: read a camera, replace the background, and send "
        "the result to a virtual camera, a preview window and/or a file.",
        epilog=RUN_EPILOG,
        formatter_class=_Formatter,
    )
    p.add_argument(
        "--camera",
        metavar="CAM",
        default=None,
        help="camera index (0), device path (/dev/video2), stream URL (reconnected when it "
        "drops) or a video file (played at its own frame rate) (default 0)",
    )
    p.add_argument(
        "--size", metavar="WxH", default=None, help="capture size, e.g. 1280x720 (default)"
    )
    p.add_argument(
        "--fps", type=float, metavar="FPS", default=None, help="capture frame rate (default 30)"
    )
    p.add_argument(
        "--background",
        "-b",
        metavar="BG",
        action="append",
        default=None,
        help="a bundled name, an image path, blur, blur:K or color:#RRGGBB; repeat it to "
        "make a list that n/p cycle through in the preview (default: blur)",
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="OUT",
        action="append",
        default=None,
        help="vcam, preview or FILE.mp4; repeat to combine (default: vcam)",
    )
    p.add_argument(
        "--mirror",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="flip the image horizontally, like a mirror",
    )
    p.add_argument(
        "--show-fps",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw an FPS/latency line on the output",
    )
    p.add_argument(
        "--vcam-backend",
        metavar="NAME",
        default=None,
        help="pyvirtualcam backend (v4l2loopback, obs, unitycapture; default: automatic)",
    )
    p.add_argument(
        "--max-frames",
        type=int,
        metavar="N",
        default=None,
        help="stop after N frames (default: run until q or Ctrl-C)",
    )
    p.add_argument(
        "--loop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with a video file as --camera: play it again at its end (default: stop)",
    )
    p.add_argument(
        "--keep-partial",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a recording cut short (Ctrl-C, SIGTERM, an error) is finalized as a valid "
        "file (default: on; --no-keep-partial removes it)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="let a recording (--output FILE.mp4) replace an existing file",
    )
    p.add_argument(
        "--control",
        metavar="SOCKET",
        default=None,
        help="Unix socket that `vbg ctl` talks to (default: $XDG_RUNTIME_DIR/vbg.sock); "
        "SIGUSR1/SIGUSR2 switch to the next/previous background too",
    )
    p.add_argument(
        "--no-control",
        dest="control",
        action="store_const",
        const=False,
        help="no control socket and no signal handlers",
    )
    _framing_options(p)
    _model_options(p)
    _look_options(p)
    _temporal_options(p)
    p.add_argument("--config", metavar="FILE.toml", default=None, help=CONFIG_HELP)
    p.set_defaults(func=_cmd_run)

    # ------------------------------------------------------------------ backgrounds
    p = sub.add_parser(
        "backgrounds",
        help="list the bundled backgrounds",
        description="List the bundled backgrounds: name (for --background), what it shows, "
        "licence and credit.",
        epilog=BACKGROUNDS_EPILOG,
        formatter_class=_Formatter,
    )
    p.add_argument("--credits", action="store_true", help="also print each image's author/credit")
    p.set_defaults(func=_cmd_backgrounds)

    # ------------------------------------------------------------------ eval
    p = sub.add_parser(
        "eval",
        help="measure a model on a COCO-format person data set",
        description="Evaluate a model on any COCO-format person data set through the runtime's "
        "own path, and report IoU, Dice, pixel accuracy (and dtSSD flicker on video).",
        epilog=EVAL_EPILOG,
        formatter_class=_Formatter,
    )
    p.add_argument("--ann", metavar="ANN.json", required=True, help="COCO annotation file")
    p.add_argument(
        "--images",
        metavar="ROOT",
        required=True,
        help="folder that the annotation's image file_name paths are relative to",
    )
    _model_options(p)
    p.add_argument("--json", metavar="OUT.json", default=None, help="also write the report as JSON")
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="average with a mirrored pass, as `vbg process` does by default (default: on; "
        "--no-tta measures the live path of `vbg run`)",
    )
    _quality_option(p, "standard")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_cmd_eval)

    # ------------------------------------------------------------------ bench
    p = sub.add_parser(
        "bench",
        help="measure per-stage latency of engines and the pipeline",
        description="Benchmark engines and the pipeline (per-stage p50/p95/p99 latency).",
        formatter_class=_Formatter,
    )
    if with_bench:
        from vbg import bench

        bench.add_arguments(p)
    p.set_defaults(func=_cmd_bench)
    _setup_commands(sub)
    return parser


# ---------------------------------------------------------------------------- setup commands


def _setup_commands(sub: Any) -> None:
    """doctor, cameras, info: checking the machine (vbg.doctor, vbg.cameras, vbg.info);
    ctl: steering a running `vbg run` (vbg.control)."""
    p = sub.add_parser(
        "ctl",
        help="control a running `vbg run`: next, prev, blur [K], pause, background NAME",
        description="Send a command to a running `vbg run` (useful when its only output is "
        "the virtual camera): next, prev, blur (toggle), blur K (blur on, strength K), "
        "pause, mirror, quit, background NAME (a bundled name, image path or color:#RRGGBB).",
        epilog="examples:\n  vbg ctl next\n  vbg ctl blur 61\n  vbg ctl background "
        "rome-colosseum\n  kill -USR1 $(pgrep -f 'vbg run')   # next background, by signal",
        formatter_class=_Formatter,
    )
    p.add_argument("words", nargs="+", metavar="COMMAND", help="the command and its argument")
    p.add_argument(
        "--socket", metavar="PATH", default=None, help="the run's --control socket, if not default"
    )
    p.set_defaults(func=_cmd_ctl)
    p = sub.add_parser(
        "doctor",
        help="check the virtual camera, cameras, engines and model; print fixes",
        description="Check that this machine can run vbg: the virtual camera (v4l2loopback "
        "on Linux, OBS elsewhere), cameras, inference engines and the default model. Each "
        "failed check prints the command that fixes it; the exit status is 1 if one failed.",
        formatter_class=_Formatter,
    )
    p.set_defaults(func=_cmd_doctor)
    p = sub.add_parser(
        "cameras",
        help="list video devices with their formats and sizes",
        description="List the video devices (cameras and virtual cameras) with their pixel "
        "formats and frame sizes; the first column is what --camera takes.",
        formatter_class=_Formatter,
    )
    p.set_defaults(func=_cmd_cameras)
    p = sub.add_parser(
        "info",
        help="versions of vbg, Python and its libraries (for bug reports)",
        description="Print the versions of vbg, Python, the platform and the libraries vbg "
        "uses, and the engines available.",
        formatter_class=_Formatter,
    )
    p.set_defaults(func=_cmd_info)


def _cmd_ctl(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from vbg.control import send_command

    action = send_command(" ".join(args.words), args.socket)
    if not args.quiet:
        print(f"sent {action}")
    return 0


def _cmd_doctor(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from vbg.doctor import doctor

    return doctor()


def _cmd_cameras(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from vbg.cameras import format_cameras, list_cameras

    print(format_cameras(list_cameras()))
    return 0


def _cmd_info(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from vbg.info import info_text

    print(info_text())
    return 0


# ---------------------------------------------------------------------------- handlers


def _flags(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The options the user actually gave (argparse leaves the others None)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _file_values(args: argparse.Namespace) -> dict[str, Any] | None:
    from vbg.config import load_config

    return load_config(args.config) if args.config else None


def _check_engine(name: str) -> None:
    """Unknown engine -> a clear error before any file is opened or model loaded."""
    from vbg.engines import engine_names

    valid = ["auto", *engine_names()]
    if name not in valid:
        raise VbgError(f"unknown engine '{name}'; choose one of: {', '.join(valid)}")


_TEMPORAL = (
    "light_wrap",
    "harmonize",
    "smoothing",
    "ema",
    "open_px",
    "close_px",
    "cut_threshold",
    "edges",
    "feather_px",
    "crf_every",
)
_MODEL = ("model", "engine", "threads", "follow")
_FRAMING = ("background_align", "background_zoom")


def _quality_option(p: argparse.ArgumentParser, default: str | None) -> None:
    from vbg.config import QUALITIES

    p.add_argument(
        "--quality",
        choices=QUALITIES,
        default=default,
        help="high: the bundled high-quality model (the default network fine-tuned at "
        "224x384) beside the default, averaged: test split IoU 0.915 -> 0.925, boundary IoU "
        "0.461 -> 0.491, flicker (dtSSD) 8.19 -> 7.78, for ~3x the inference per frame; "
        "with --model, that model at a second, finer size (default: standard)",
    )


def _cmd_process(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from vbg.config import ProcessConfig, resolve

    names = (
        "input",
        "output",
        "background",
        "tta",
        "quality",
        "decontaminate",
        "keep_partial",
        "progress",
        "overwrite",
        "crf",
        "preset",
        "mask_only",
        "output_alpha",
        *_FRAMING,
        *_MODEL,
        *_TEMPORAL,
    )
    inputs = list(args.input)
    args.input = inputs[0]
    cfg = resolve(ProcessConfig, _file_values(args), _flags(args, names))
    if not cfg.output:
        _subparser(parser, "process").error("the following arguments are required: -o/--output")
    _check_engine(cfg.engine)
    if args.jobs is not None and args.jobs < 1:
        raise VbgError(f"--jobs must be at least 1, not {args.jobs}")
    if len(inputs) > 1 or Path(inputs[0]).is_dir() or args.ray is not None:
        from vbg.multi import process_many

        results = process_many(
            inputs,
            cfg.output,
            cfg,
            workers=args.jobs,
            use_ray=args.ray is not None,
            ray_address=args.ray or None,
        )
        failed = [r for r in results if not r.ok]
        if failed:
            raise VbgError(f"{len(failed)} of {len(results)} files failed (see above)")
        return 0
    if not Path(cfg.input).exists():
        raise VbgError(f"input not found: {cfg.input}")

    from vbg.pipeline import process_config

    process_config(cfg)
    return 0


def _cmd_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from vbg.config import RunConfig, resolve

    names = (
        "camera",
        "size",
        "fps",
        "background",
        "output",
        "mirror",
        "show_fps",
        "vcam_backend",
        "max_frames",
        "loop",
        "keep_partial",
        "overwrite",
        "control",
        *_FRAMING,
        *_MODEL,
        *_TEMPORAL,
    )
    cfg = resolve(RunConfig, _file_values(args), _flags(args, names))
    _check_engine(cfg.engine)
    if cfg.fps <= 0:
        raise VbgError(f"--fps must be positive, not {cfg.fps:g}")
    if cfg.max_frames is not None and cfg.max_frames <= 0:
        raise VbgError(f"--max-frames must be positive, not {cfg.max_frames}")

    from vbg.pipeline import run_config

    run_config(cfg)
    return 0


def _cmd_backgrounds(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from vbg.backgrounds import list_backgrounds

    items = list_backgrounds()
    if not items:
        print("no bundled backgrounds found; use an image path, blur or color:#RRGGBB")
        return 0
    w_name = max(len("name"), *(len(b.name) for b in items))
    w_desc = min(60, max(len("shows"), *(len(b.description) for b in items)))
    print(f"{'name':<{w_name}}  {'shows':<{w_desc}}  licence")
    for b in items:
        desc = (
            b.description if len(b.description) <= w_desc else b.description[: w_desc - 3] + "..."
        )
        print(f"{b.name:<{w_name}}  {desc:<{w_desc}}  {b.license}")
    if args.credits:
        print()
        for b in items:
            print(f"{b.name}: {b.credit or 'see ATTRIBUTION.md'}")
    print("\nalso: any image path, blur, blur:K or color:#RRGGBB (--credits: authors)")
    return 0


def _cmd_eval(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    engine = args.engine or "auto"
    _check_engine(engine)
    from vbg.evaluate import run_eval

    run_eval(
        args.ann,
        args.images,
        model=args.model,
        engine=engine,
        threads=args.threads,
        tta=args.tta,
        quality=args.quality,
        follow=args.follow is not False,
        json_out=args.json,
        progress=args.progress,
    )
    return 0


def _cmd_bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from vbg import bench

    return int(bench.run(args) or 0)


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    return parser


# ---------------------------------------------------------------------------- entry point


class _StderrHandler(logging.Handler):
    """Log lines as 'vbg: message' on whatever sys.stderr is at the time (pytest swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        # A closed stream at interpreter exit: nothing left to tell.
        with contextlib.suppress(OSError, ValueError):
            print(f"vbg: {record.getMessage()}", file=sys.stderr)


def _setup_logging(quiet: bool) -> None:
    log = logging.getLogger("vbg")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())
        log.propagate = False
    log.setLevel(logging.WARNING if quiet else logging.INFO)


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand word (top-level options take no values, so it is the first non-option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit status (0 ok, 1 error, 2 bad usage, 128+N when
    stopped by signal N: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(with_bench=_command_of(argv) == "bench")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) and usage errors (2)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    _setup_logging(args.quiet)
    # OpenCV prints its own "[ WARN:0@0.1] ..." lines (a camera index that does not exist, a
    # codec probe); vbg reports failures itself. Read when cv2 is first imported.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")

    from vbg.signals import exit_code, stop_on_signals

    try:
        with stop_on_signals():  # SIGTERM and SIGHUP stop as cleanly as Ctrl-C
            return int(args.func(args, parser) or 0)
    except SystemExit as e:  # a handler's parser.error(): usage error
        return e.code if isinstance(e.code, int) else 2
    except VbgError as e:
        print(f"vbg: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `vbg backgrounds | head`: the reader left; not an error
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # disk full, permission denied: actionable, one line
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"vbg: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # one line: the signal, and what became of the output
        name = getattr(e, "signal_name", None)
        detail = getattr(e, "detail", None)
        print(
            f"vbg: interrupted{f' ({name})' if name else ''}{f': {detail}' if detail else ''}",
            file=sys.stderr,
        )
        return exit_code(e)


if __name__ == "__main__":
    raise SystemExit(main())

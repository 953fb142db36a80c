"""Options of `vbg process` and `vbg run`: defaults < config file (TOML) < command-line flags.

The precedence is applied in exactly one place, `resolve()`. The CLI hands it only the flags
the user actually typed (argparse defaults are None), so a flag left out never overrides a
value from the file.

A config file holds the same names as the flags (dashes or underscores):

    # vbg.toml
    engine = "onnxruntime"       # top level: applies to every command that has the option
    background = "blur"
    ema = 0.6

    [process]                    # only for `vbg process`
    keep_partial = true

    [run]                        # only for `vbg run`
    camera = "/dev/video2"
    size = "1280x720"
    background = ["paris-eiffel-tower", "blur", "color:#20a040"]
    output = ["vcam", "preview"]
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vbg import VbgError

_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


@dataclass(frozen=True)
class MaskOptions:
    """What `process` and `run` share: the model, its engine, and how the mask is smoothed
    over time and refined (see vbg.temporal and vbg.refine)."""

    model: str | None = None  # card path; None = the bundled default model
    engine: str = "auto"
    threads: int | None = None
    follow: bool = True  # the network sees a crop around the person (vbg.roi)
    smoothing: str = "adaptive"  # adaptive | ema (vbg.temporal)
    ema: float = 0.5
    open_px: int = 1
    close_px: int = 1
    cut_threshold: float = 0.35
    edges: str = "guided"  # guided (snap to image edges) | bilinear
    feather_px: int = 0
    crf_every: int = 0
    light_wrap: bool = True  # image backgrounds only (vbg.lightwrap)
    harmonize: bool = False  # image backgrounds only (vbg.harmonize)


QUALITIES = ("standard", "high")  # --quality (vbg.pipeline._high_quality_card)


@dataclass(frozen=True)
class ProcessConfig(MaskOptions):
    """`vbg process INPUT -o OUTPUT`: offline, every frame."""

    input: str | None = None
    output: str | None = None
    background: str = "blur"
    # Test-time horizontal flip: twice the inference cost, better edges. On by default
    # offline, where quality matters more than speed; `vbg run` never uses it.
    tta: bool = True
    # "high": the bundled high-quality model beside the default (with --model: that model
    # at two input sizes), averaged (vbg.pipeline._high_quality_card).
    quality: str = "standard"
    # Replace the old background's colour in the soft edge with the person's (vbg.edges).
    decontaminate: bool = True
    keep_partial: bool = False  # Ctrl-C finalizes a shorter, valid file instead of removing it
    progress: bool = True
    background_align: str = "auto"  # auto|left|right|center: the landmark beside the person
    background_zoom: float | None = None  # None: as little as the alignment needs
    # What is written (vbg.outputs): the composite, the matte, or the person with alpha.
    mask_only: bool = False
    output_alpha: bool = False
    crf: int = 18  # H.264 quality: 18 re-encodes the sample clip at ~0.97x its bitrate
    preset: str = "veryfast"
    overwrite: bool = False


@dataclass(frozen=True)
class RunConfig(MaskOptions):
    """`vbg run`: camera -> virtual camera / preview / recording, live."""

    camera: int | str = 0
    size: tuple[int, int] = (1280, 720)  # width, height
    fps: float = 30.0
    background: tuple[str, ...] = ("blur",)  # cycled with n/p in the preview
    output: tuple[str, ...] = ("vcam",)
    mirror: bool = False
    show_fps: bool = False
    vcam_backend: str | None = None
    max_frames: int | None = None
    loop: bool = False  # a video file as the camera: play it again at its end
    keep_partial: bool = True  # a recording cut short (signal, error) is finalized
    background_align: str = "auto"  # auto|left|right|center: the landmark beside the person
    background_zoom: float | None = None  # None: as little as the alignment needs
    overwrite: bool = False  # a recording (--output FILE.mp4) may replace an existing file
    # vbg ctl socket: True = the default path (vbg.control), a path, or False = none
    control: bool | str = True


ConfigT = TypeVar("ConfigT", ProcessConfig, RunConfig)

_SECTIONS: dict[str, type] = {"process": ProcessConfig, "run": RunConfig}
# Positional arguments are not config-file material: a file names how to process, not what.
_NOT_IN_FILE = {"input"}


def parse_size(text: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """'1280x720' -> (1280, 720) (width, height)."""
    if isinstance(text, (tuple, list)):
        if len(text) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in text):
            w, h = int(text[0]), int(text[1])
        else:
            raise VbgError(f"size must be WIDTHxHEIGHT, e.g. 1280x720, not {text!r}")
    else:
        m = _SIZE_RE.match(str(text))
        if not m:
            raise VbgError(f"size must be WIDTHxHEIGHT, e.g. 1280x720, not {text!r}")
        w, h = int(m.group(1)), int(m.group(2))
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise VbgError(f"size {w}x{h} is out of range (16..8192 per side)")
    return w, h


def parse_camera(spec: int | str) -> int | str:
    """'0' -> 0 (a camera index); a device path or URL stays a string."""
    if isinstance(spec, bool):
        raise VbgError(f"camera must be an index, a device path or a URL, not {spec!r}")
    if isinstance(spec, int):
        return spec
    s = str(spec).strip()
    return int(s) if s.isdigit() else s


def _as_tuple(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value) and value:
        return tuple(value)
    raise VbgError(f"config: '{key}' must be a string or a non-empty list of strings")


def _coerce(cls: type, key: str, value: Any) -> Any:
    """Checks and converts one value for field `key` of `cls`; a clear error otherwise."""
    if key == "size":
        return parse_size(value)
    if key == "camera":
        return parse_camera(value)
    if key == "control":
        if isinstance(value, bool) or (isinstance(value, str) and value):
            return value
        raise VbgError(f"config: 'control' must be true, false or a socket path, not {value!r}")
    if cls is RunConfig and key in ("background", "output"):
        return _as_tuple(key, value)
    default = {f.name: f.default for f in dataclasses.fields(cls)}[key]
    if value is None:
        return None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise VbgError(f"config: '{key}' must be true or false, not {value!r}")
        return value
    if isinstance(default, float) or key == "background_zoom":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise VbgError(f"config: '{key}' must be a number, not {value!r}")
        return float(value)
    if isinstance(default, int) or key in ("threads", "max_frames"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise VbgError(f"config: '{key}' must be an integer, not {value!r}")
        return int(value)
    if not isinstance(value, (str, Path)):
        raise VbgError(f"config: '{key}' must be a string, not {value!r}")
    return str(value)


def _norm(key: str) -> str:
    return key.replace("-", "_")


def load_config(path: str | Path) -> dict[str, Any]:
    """Reads a TOML config file into {key: value, 'process': {...}, 'run': {...}}.

    Keys are checked here, so a typo fails before anything runs; values are checked
    against the command's options in `resolve`.
    """
    path = Path(path)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise VbgError(
                "reading a config file on Python 3.10 needs tomli: pip install tomli"
            ) from None
    if not path.is_file():
        raise VbgError(f"config file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise VbgError(f"config file {path} is not valid TOML: {e}") from e

    known_any = set().union(*(_fields(c) for c in _SECTIONS.values())) - _NOT_IN_FILE
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in raw.items():
        if key in _SECTIONS and isinstance(value, dict):
            allowed = _fields(_SECTIONS[key]) - _NOT_IN_FILE
            section = {}
            for k, v in value.items():
                if _norm(k) in allowed:
                    section[_norm(k)] = v
                else:
                    unknown.append(f"{key}.{k}")
            out[key] = section
        elif _norm(key) in known_any:
            out[_norm(key)] = value
        else:
            unknown.append(key)
    if unknown:
        raise VbgError(
            f"config file {path}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"valid keys: {', '.join(sorted(known_any))}"
        )
    return out


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def resolve(
    cls: type[ConfigT],
    file_values: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> ConfigT:
    """The one place where defaults < config file < flags is decided.

    file_values: what `load_config` returned (top-level keys apply where `cls` has them; the
    [process]/[run] table of `cls` overrides them). flags: only the flags the user gave
    (None values are ignored: argparse uses None for "not given").
    """
    names = _fields(cls)
    section = next(s for s, c in _SECTIONS.items() if c is cls)
    merged: dict[str, Any] = {}
    if file_values:
        for k, v in file_values.items():
            if k in names and k not in _NOT_IN_FILE:
                merged[k] = v
        merged.update(file_values.get(section, {}))
    if flags:
        unknown = sorted(_norm(k) for k in flags if _norm(k) not in names)
        if unknown:
            raise VbgError(f"unknown {section} option(s): {', '.join(unknown)}")
        merged.update({_norm(k): v for k, v in flags.items() if v is not None})
    return cls(**{k: _coerce(cls, k, v) for k, v in merged.items()})

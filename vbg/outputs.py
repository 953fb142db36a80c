"""What `vbg process` writes, decided before any work starts: the output path check
(never overwrite without --overwrite) and the output mode.

Modes:
  composite  the person over the new background (default)
  mask       the alpha matte itself, white = person (--mask-only)
  alpha      the person with transparency, background removed (--output-alpha): WebM VP9
             with alpha (.webm), ProRes 4444 (.mov) or a PNG sequence (a folder, or an
             image output for an image input)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vbg import VbgError

if TYPE_CHECKING:
    from vbg.pipeline import FrameProcessor

MODES = ("composite", "mask", "alpha")
ALPHA_VIDEO_SUFFIXES = (".webm", ".mov")
ALPHA_IMAGE_SUFFIXES = (".png", ".webp", ".tif", ".tiff")
DEFAULT_CRF = 18  # re-encoding the sample clip at 18 (veryfast) keeps ~0.97x its bitrate
DEFAULT_PRESET = "veryfast"
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


@dataclass(frozen=True)
class OutputOptions:
    """What `vbg process` writes: mode (see above), H.264 quality, overwriting."""

    mode: str = "composite"
    crf: int = DEFAULT_CRF  # x264 constant rate factor: lower = better and bigger
    preset: str = DEFAULT_PRESET  # x264 speed/size trade-off
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"output mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        check_encoder_options(self.crf, self.preset)


def check_overwrite(output: str | Path, *, overwrite: bool = False) -> Path:
    """The one check that an existing file (or PNG-sequence folder) is not replaced unless
    the user said so; call it before a model is loaded or a frame processed."""
    path = Path(output)
    if path.exists() and not overwrite:
        raise VbgError(f"output {path} already exists; pass --overwrite to replace it")
    return path


def check_encoder_options(crf: int, preset: str) -> None:
    if not 0 <= crf <= 51:
        raise VbgError(f"--crf must be 0..51 (lower = better, {DEFAULT_CRF} default), not {crf}")
    if preset not in X264_PRESETS:
        raise VbgError(f"unknown --preset '{preset}'; choose one of: {', '.join(X264_PRESETS)}")


def is_png_sequence(output: Path) -> bool:
    """An alpha output without a video suffix is a folder of numbered PNGs."""
    return output.suffix == "" or output.is_dir()


def check_alpha_output(output: Path, *, is_image: bool) -> None:
    suffix = output.suffix.lower()
    if is_image:
        if suffix not in ALPHA_IMAGE_SUFFIXES:
            raise VbgError(
                f"an image with transparency must be {', '.join(ALPHA_IMAGE_SUFFIXES)}, "
                f"not {output.name} (JPEG has no alpha channel)"
            )
    elif suffix not in ALPHA_VIDEO_SUFFIXES and not is_png_sequence(output):
        raise VbgError(
            f"--output-alpha writes .webm (VP9 with alpha), .mov (ProRes 4444) or a folder "
            f"of PNGs, not {output.name}"
        )
    if not output.parent.is_dir():
        raise VbgError(f"output folder does not exist: {output.parent}")


def renderer(proc: FrameProcessor, mode: str) -> Callable[..., np.ndarray]:
    """(frame BGR, time in s) -> what the output gets for `mode` (a buffer the next call may
    reuse; the time picks a video background's frame)."""
    if mode == "composite":
        return proc.process
    if mode == "mask":

        def mask(frame: np.ndarray, t: float | None = None) -> np.ndarray:
            alpha = proc.mask(frame)
            return cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR)

        return mask
    if mode == "alpha":

        def with_alpha(frame: np.ndarray, t: float | None = None) -> np.ndarray:
            alpha = proc.mask(frame)
            with proc.timer.stage("compositing"):
                if proc.edge_colors is not None:  # straight-alpha colours without a fringe
                    frame = proc.edge_colors(frame, alpha)
                bgra = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
                bgra[:, :, 3] = alpha
                return bgra

        return with_alpha
    raise ValueError(f"output mode must be one of {', '.join(MODES)}, not {mode!r}")

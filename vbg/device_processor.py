"""A FrameProcessor whose whole frame stays on the GPU (vbg.device_path).

`build_processor` makes one when the engine runs on a CUDA GPU and every option asked for
has a device form; otherwise the frame is post-processed on the host as before and the log
says which option kept it there (`device_path_blocker`). It has the interface the drivers
use (`process`, `mask`, `reset`, `set_background`, `close`, `timer`), plus
`process_batch`, which `vbg process` uses to send several frames through the network at
once.

Backgrounds are fitted on the host exactly as the host path fits them (vbg.compose, with
its framing and align=auto measurement) and uploaded once per size; a colour and a blur
need no upload. The device work of a frame is timed as one "inference" stage: splitting it
into stages would need a GPU sync between each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vbg import VbgError
from vbg.timing import StageTimer

if TYPE_CHECKING:
    from vbg.backgrounds import BackgroundSpec
    from vbg.device_path import DevicePath
    from vbg.edges import EdgeColors
    from vbg.framing import Framing

DEVICE_BACKGROUNDS = ("image", "color", "blur")


def device_path_blocker(
    *,
    edges: str,
    feather_px: int,
    crf_every: int,
    harmonize: bool,
    background: BackgroundSpec | None,
    quality: str = "standard",
    prior: bool = False,
) -> str:
    """Why these options keep the frame on the host ("" when the device path can do it)."""
    if prior:
        return "a model with a previous-frame input"
    if quality != "standard":
        return f"--quality {quality}"
    if edges != "guided":
        return f"--edges {edges}"
    if feather_px:
        return "--feather"
    if crf_every:
        return "--crf-every (DenseCRF runs on the CPU)"
    if harmonize:
        return "--harmonize"
    if background is not None and background.kind not in DEVICE_BACKGROUNDS:
        return f"a {background.kind} background"
    return ""


def engine_tensor_device(engine: Any) -> str:
    """The torch device an engine's run_tensor works on ("" when it has none)."""
    if not hasattr(engine, "run_tensor"):
        return ""
    return str(getattr(engine, "tensor_device", ""))


@dataclass
class DeviceFrameProcessor:
    """The device path behind the FrameProcessor interface (see the module docstring)."""

    path: DevicePath
    engine: Any
    background: BackgroundSpec | None = None
    framing: Framing | None = None
    timer: StageTimer = field(default_factory=StageTimer)
    edge_colors: EdgeColors | None = None  # alpha output only: straight colours on the host
    batch_size: int = 8  # frames per network call in process_batch
    _host: Any = None  # a host Compositor, used only to fit image backgrounds
    _size: tuple[int, int] | None = None

    @property
    def engine_name(self) -> str:
        name = getattr(self.engine, "name", type(self.engine).__name__)
        return f"{name} (whole frame on {self.path.device.type})"

    @property
    def tta(self) -> bool:
        return self.path.cfg.tta

    @property
    def segmenter(self) -> Any:  # drivers read .segmenter.engine and .segmenter.card
        return self

    @property
    def card(self) -> Any:
        return self.path.card

    @property
    def compositor(self) -> Any:
        """The host compositor that fitted an image background (the live loop's outage
        picture shows its background), or None."""
        return self._host

    # --- background ----------------------------------------------------------------------

    def set_background(self, background: str | BackgroundSpec) -> None:
        from vbg.backgrounds import parse_background

        spec = parse_background(background) if isinstance(background, str) else background
        if spec.kind not in DEVICE_BACKGROUNDS:
            raise VbgError(f"a {spec.kind} background is not on the GPU path; use --device cpu")
        self.background = spec
        if self._size is not None:
            self._upload_background(self._size)

    def _upload_background(self, hw: tuple[int, int]) -> None:
        from vbg.compose import Compositor

        spec = self.background
        if spec is None:
            raise VbgError("no background set for compositing")
        self._size = hw
        if spec.kind == "image":
            if self._host is None or self._host.spec != spec or self._host.size != hw:
                self._host = Compositor(spec, hw, framing=self.framing, light_wrap=False)
            self.path.set_background(self._host.background)
        elif spec.kind == "color":
            self.path.set_background(color_bgr=tuple(int(v) for v in spec.color_bgr))
        else:
            self.path.set_background(blur_ksize=max(1, int(spec.blur_ksize)))

    def _observe(self, frame_alpha: np.ndarray) -> None:
        """align=auto: the host compositor places the landmark from the first frame with a
        person; re-upload when it moved it. Only the first few frames are read back."""
        if self._host is not None and self._host.observe_person(frame_alpha):
            self.path.set_background(self._host.background)

    def _measuring(self) -> bool:
        return self._host is not None and self._host.measuring

    # --- per frame / batch -------------------------------------------------------------

    def mask(self, frame_bgr: np.ndarray) -> np.ndarray:
        with self.timer.stage("inference"):
            return self.path.mask(frame_bgr)

    def process(self, frame_bgr: np.ndarray, t: float | None = None) -> np.ndarray:
        return self.process_batch(frame_bgr[None])[0]

    def process_batch(self, frames_bgr: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> composited (N, H, W, 3) uint8, a buffer the next call
        may reuse."""
        hw = tuple(frames_bgr.shape[1:3])
        if self._size != hw:
            self._upload_background(hw)  # once per frame size
        with self.timer.stage("inference"):
            if self._measuring():
                # Frame by frame until the landmark is placed (at most 30 frames).
                outs = []
                for f in frames_bgr:
                    out, alpha = self.path.process_with_alpha(f)
                    outs.append(out.copy())
                    self._observe(alpha)
                return np.stack(outs)
            return self.path.process(frames_bgr)

    def reset(self) -> None:
        self.path.reset()

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
        self.engine.close()

"""Frame -> person probability at model resolution.

`preprocess` is THE preprocessing of this project: the runtime uses it for every frame and
train/ uses it for validation and test images, so a model is evaluated on exactly what it
will see. Everything it does comes from the model card's InputSpec.
"""

from __future__ import annotations

from contextlib import nullcontext

import cv2
import numpy as np

from vbg.card import InputSpec, ModelCard
from vbg.engines import Engine
from vbg.resize import shrink_area


def model_input_size(
    frame_h: int | tuple[int, int], frame_w: int | InputSpec, spec: InputSpec | None = None
) -> tuple[int, int]:
    """Model input (h, w) for a frame: model_input_size(h, w, spec) or ((h, w), spec).

    With fit="area" the aspect ratio is kept and each side is a multiple of spec.multiple:
    1280x720 -> 160x288 and a 600x800 portrait -> 256x192 with the default 160x288 card.
    """
    if spec is None:
        if not isinstance(frame_w, InputSpec):
            raise TypeError("model_input_size(h, w, spec) or model_input_size((h, w), spec)")
        spec = frame_w
        frame_h, frame_w = frame_h  # type: ignore[misc]
    return spec.size_for(int(frame_h), int(frame_w))


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise TypeError(f"frame must be a uint8 numpy array, not {getattr(frame, 'dtype', frame)}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be BGR with shape (H, W, 3), not {frame.shape}")


def _norm_coeffs(spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """(x / scale - mean) / std == x * a - b, per model channel."""
    std = np.asarray(spec.std, dtype=np.float64)
    a = 1.0 / (spec.scale * std)
    b = np.asarray(spec.mean, dtype=np.float64) / std
    return a.astype(np.float32), b.astype(np.float32)


def preprocess(frame_bgr: np.ndarray, spec: InputSpec, out: np.ndarray | None = None) -> np.ndarray:
    """BGR uint8 HxWx3 -> normalised NCHW float32 (1, 3, h, w) for the model.

    Resize to model_input_size (area averaging when shrinking, which averages instead of
    aliasing: vbg.resize.shrink_area, exact 2x halvings then INTER_AREA, for speed;
    bilinear when enlarging) -> colour order per the card -> / scale -> (x - mean) / std
    -> NCHW. Pass `out` (the right shape, float32) to reuse a buffer.
    """
    _check_frame(frame_bgr)
    fh, fw = frame_bgr.shape[:2]
    h, w = model_input_size(fh, fw, spec)
    if (h, w) == (fh, fw):
        small = frame_bgr
    elif h <= fh and w <= fw:
        small = shrink_area(frame_bgr, (w, h))
    else:
        small = cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    if out is None:
        out = np.empty((1, 3, h, w), dtype=np.float32)
    elif out.shape != (1, 3, h, w) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 (1, 3, {h}, {w}), not {out.dtype} {out.shape}")
    a, b = _norm_coeffs(spec)
    # Reading the source channel in the card's order is the same as cvtColor(BGR2RGB)
    # without the extra image; each plane is written straight into the NCHW buffer.
    src_channel = (2, 1, 0) if spec.color_order == "RGB" else (0, 1, 2)
    for c, s in enumerate(src_channel):
        plane = out[0, c]
        np.multiply(small[:, :, s], a[c], out=plane, casting="unsafe")
        plane -= b[c]
    return out


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """In-place logistic function; tanh form, so large |x| never overflows."""
    np.multiply(x, 0.5, out=x)
    np.tanh(x, out=x)
    np.multiply(x, 0.5, out=x)
    np.add(x, 0.5, out=x)
    return x


class Segmenter:
    """frame -> person probability float32 (h, w) in [0, 1] at model resolution.

    The normalised input tensor is preallocated per frame size. `timer` (a StageTimer)
    times "preprocess" and "inference" separately when given.
    """

    def __init__(self, card: ModelCard, engine: Engine) -> None:
        self.card = card
        self.engine = engine
        self._buf: np.ndarray | None = None

    def input_size(self, frame_h: int, frame_w: int) -> tuple[int, int]:
        return model_input_size(frame_h, frame_w, self.card.input)

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The engine input for this frame, in a buffer reused for frames of the same size."""
        _check_frame(frame_bgr)
        h, w = self.input_size(*frame_bgr.shape[:2])
        if self._buf is None or self._buf.shape[2:] != (h, w):
            self._buf = np.empty((1, 3, h, w), dtype=np.float32)
        return preprocess(frame_bgr, self.card.input, out=self._buf)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Engine output -> probability (h, w) float32 (a new array)."""
        y = self.engine.run(x)
        if y.ndim != 4 or y.shape[0] != 1 or y.shape[1] < 1:
            raise ValueError(
                f"engine {self.engine.name} returned shape {y.shape}, expected (1, 1, h, w)"
            )
        # A copy (model resolution, small): the engine may reuse its output buffer.
        prob = np.array(y[0, 0], dtype=np.float32, copy=True)
        h, w = x.shape[2:]
        if prob.shape != (h, w):
            # A model that predicts at a stride: bring it to the input grid.
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.card.output.kind == "logits":
            sigmoid_(prob)
        else:
            np.clip(prob, 0.0, 1.0, out=prob)
        return prob

    def __call__(self, frame_bgr: np.ndarray, timer=None) -> np.ndarray:
        with timer.stage("preprocess") if timer is not None else nullcontext():
            x = self.prepare(frame_bgr)
        with timer.stage("inference") if timer is not None else nullcontext():
            return self.infer(x)

"""Sinks for frames with transparency (BGRA uint8): for video editors and streamers.

  AlphaVideoSink   .webm: VP9 with an alpha channel (libvpx-vp9, yuva420p), which browsers,
                   OBS and most editors read; .mov: ProRes 4444 with alpha (prores_ks,
                   yuva444p10le), the editing format
  PngSequenceSink  a folder of 000000.png, 000001.png, ... RGBA PNGs, readable everywhere

Like VideoFileSink, each writes under a temporary name and renames on close(); abort()
removes it. Audio is not copied: WebM cannot hold the AAC of a typical MP4, and editors
take the audio from the original.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vbg import VbgError
from vbg.sinks import _fraction, partial_path

CODECS = {
    ".webm": ("libvpx-vp9", "yuva420p", {"crf": "20", "b:v": "0", "row-mt": "1", "cpu-used": "4"}),
    ".mov": ("prores_ks", "yuva444p10le", {"profile": "4444", "alpha_bits": "16"}),
}


def _check_bgra(frame: np.ndarray, width: int, height: int) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise TypeError("frame must be a uint8 numpy array")
    if frame.shape != (height, width, 4):
        raise ValueError(f"frame shape must be {(height, width, 4)} (BGRA), got {frame.shape}")


def codec_available(suffix: str) -> bool:
    import av

    try:
        av.codec.Codec(CODECS[suffix][0], "w")
    except (av.FFmpegError, KeyError, ValueError):
        return False
    return True


class AlphaVideoSink:
    def __init__(self, path: str | os.PathLike[str], fps: float, width: int, height: int) -> None:
        import av

        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in CODECS:
            raise VbgError(f"a video with alpha must be .webm or .mov, not {self.path.name}")
        codec, pix_fmt, options = CODECS[suffix]
        if not codec_available(suffix):
            raise VbgError(
                f"this PyAV build has no {codec} encoder; write a PNG sequence instead "
                f"(-o a folder name)"
            )
        self.partial = partial_path(self.path)
        self.width, self.height = int(width), int(height)
        # 4:2:0 needs even sides: an odd last row/column is cropped off.
        self._enc_w, self._enc_h = self.width & ~1, self.height & ~1
        self.fps = _fraction(fps)
        self._tb = 1 / (self.fps * 1000)
        self._last: int | None = None
        self.frames_written = 0
        self._closed = False
        try:
            self._out = av.open(str(self.partial), mode="w")
            self._stream = self._out.add_stream(codec, rate=self.fps)
            self._stream.width, self._stream.height = self._enc_w, self._enc_h
            self._stream.pix_fmt = pix_fmt
            self._stream.options = dict(options)
            self._stream.codec_context.time_base = self._tb
            self._stream.time_base = self._tb
            self._out.start_encoding()
        except av.FFmpegError as e:
            self.partial.unlink(missing_ok=True)
            raise VbgError(f"cannot write {self.path}: {' '.join(str(e).split())}") from e

    def write(self, frame_bgra: np.ndarray, pts: float | None = None) -> None:
        import av

        if self._closed:
            raise VbgError(f"write to {self.path} after close()")
        _check_bgra(frame_bgra, self.width, self.height)
        img = np.ascontiguousarray(frame_bgra[: self._enc_h, : self._enc_w])
        frame = av.VideoFrame.from_ndarray(img, format="bgra")
        ticks = 0 if self._last is None else self._last + 1000
        if pts is not None:
            ticks = max(round(pts / self._tb), 0 if self._last is None else self._last + 1)
        frame.pts, frame.time_base = ticks, self._tb
        self._last = ticks
        try:
            for packet in self._stream.encode(frame):
                self._out.mux(packet)
        except av.FFmpegError as e:
            raise VbgError(f"encoding {self.path} failed: {' '.join(str(e).split())}") from e
        self.frames_written += 1

    def close(self, *, trim_audio: bool = False) -> None:  # no audio: trim_audio is moot
        if self._closed:
            return
        self._closed = True
        try:
            if self.frames_written == 0:
                raise VbgError(f"no frames were written; {self.path} not created")
            for packet in self._stream.encode(None):
                self._out.mux(packet)
            self._out.close()
        except BaseException:
            self._discard()
            raise
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(Exception):  # the file is being thrown away anyway
            self._out.close()
        self.partial.unlink(missing_ok=True)


class PngSequenceSink:
    """Numbered RGBA PNGs in a folder (created; an existing one is replaced on close())."""

    def __init__(self, folder: str | os.PathLike[str], **_: Any) -> None:
        self.path = Path(folder)
        self.partial = self.path.with_name(f"{self.path.name}.partial")
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=False)
        self.frames_written = 0
        self._closed = False

    def write(self, frame_bgra: np.ndarray, pts: float | None = None) -> None:
        if self._closed:
            raise VbgError(f"write to {self.path} after close()")
        if frame_bgra.ndim != 3 or frame_bgra.shape[2] != 4 or frame_bgra.dtype != np.uint8:
            raise ValueError(f"frame must be (H, W, 4) uint8 BGRA, got {frame_bgra.shape}")
        name = self.partial / f"{self.frames_written:06d}.png"
        if not cv2.imwrite(str(name), frame_bgra, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise VbgError(f"cannot write {name}")
        self.frames_written += 1

    def close(self, *, trim_audio: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if self.frames_written == 0:
            self.abort()
            raise VbgError(f"no frames were written; {self.path} not created")
        if self.path.is_dir():
            shutil.rmtree(self.path)  # --overwrite was checked before work started
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        self._closed = True
        shutil.rmtree(self.partial, ignore_errors=True)


def open_alpha_sink(path: Path, *, fps: float, width: int, height: int) -> Any:
    from vbg.outputs import is_png_sequence

    if is_png_sequence(path):
        return PngSequenceSink(path)
    return AlphaVideoSink(path, fps, width, height)

"""Keeping OpenCV's own console chatter ("[ WARN:0@0.1] global cap_v4l.cpp ...") out of
vbg's output: vbg reports every failure itself, in one line."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_SILENT = 0  # cv2.utils.logging.LOG_LEVEL_SILENT


def silence_opencv() -> None:
    """For the whole process. The environment variable covers messages printed while cv2
    is first imported (plugin loading); setLogLevel those after."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    os.environ.setdefault("OPENCV_VIDEOIO_DEBUG", "0")
    import cv2

    with contextlib.suppress(AttributeError):
        cv2.utils.logging.setLogLevel(_SILENT)


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV inside a block (e.g. probing camera indices that do not exist)."""
    import cv2

    try:
        old = cv2.utils.logging.getLogLevel()
    except AttributeError:
        yield
        return
    cv2.utils.logging.setLogLevel(_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(old)

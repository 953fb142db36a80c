"""Keeping OpenCV's own console chatter ("[ WARN:0@0.1] global cap_v4l.cpp ...") out of
vbg's output: vbg reports every failure itself, in one line. (For the whole process the
CLI sets OPENCV_LOG_LEVEL=OFF before cv2 is imported; these are for library callers.)"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_SILENT = 0  # cv2.utils.logging.LOG_LEVEL_SILENT


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


def silence_opencv() -> None:
    """Silence OpenCV's WARN/ERROR lines for good (e.g. "can't open camera by index"): a
    camera that does not open is reported as one line of vbg's own. FFmpeg's log level (a
    stream URL that refuses the connection) is read when OpenCV first opens a capture."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    try:
        cv2.utils.logging.setLogLevel(_SILENT)
    except AttributeError:  # an OpenCV build without the utils.logging module
        cv2.setLogLevel(0)

"""Keeping OpenCV's own console chatter ("[ WARN:0@0.1] global cap_v4l.cpp ...") out of
vbg's output: vbg reports every failure itself, in one line. (For the whole process the
CLI sets OPENCV_LOG_LEVEL=OFF before cv2 is imported; this is for library callers.)"""

from __future__ import annotations

import contextlib
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

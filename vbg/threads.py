"""Helpers for vbg's background threads (compiles that must not slow the live loop)."""

from __future__ import annotations

import contextlib
import os
import threading


def lowest_priority() -> None:
    """The calling thread (not the process) at nice 19, where the OS allows it (Linux): a
    compile on a 2-core machine otherwise takes a core from the live loop's frames."""
    with contextlib.suppress(AttributeError, OSError):  # no setpriority, or not allowed
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)

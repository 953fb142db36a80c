"""SIGINT, SIGTERM and SIGHUP stop vbg the same clean way.

The first signal raises ``Interrupted`` (a KeyboardInterrupt, so every ``except
KeyboardInterrupt`` cleanup path - release the camera, close the virtual camera, finalize or
remove a recording - runs for `timeout`, `systemctl stop`, `docker stop` or a closed terminal
exactly as for Ctrl-C). A second signal while that cleanup runs exits at once, after removing
the temporary files still being written (``track_temp``): files only reach their final name
by an atomic rename when complete, so nothing broken is left under a final name either way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)

_temp_lock = threading.Lock()
_temp_files: set[Path] = set()


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; ``signum``/``signal_name`` say which."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.signal_name = signal.Signals(signum).name
        super().__init__(self.signal_name)


def track_temp(path: Path) -> None:
    """A temporary file that a hard exit (second signal) must remove."""
    with _temp_lock:
        _temp_files.add(Path(path))


def untrack_temp(path: Path) -> None:
    with _temp_lock:
        _temp_files.discard(Path(path))


def remove_temp_files() -> None:
    with _temp_lock:
        paths = list(_temp_files)
        _temp_files.clear()
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink()


def exit_code(e: BaseException) -> int:
    """128 + the signal number (130 for Ctrl-C), the shell's convention."""
    return 128 + int(getattr(e, "signum", signal.SIGINT))


@contextlib.contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Install the handlers for the duration of a command (main thread only; elsewhere,
    e.g. a test calling main() from a thread, nothing is installed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        if len(received) == 1:
            raise Interrupted(signum)
        # A second signal: the user (or the service manager) wants out now.
        remove_temp_files()
        with contextlib.suppress(OSError):
            os.write(2, b"vbg: second signal: exiting now\n")
        os._exit(128 + signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

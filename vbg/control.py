"""Control of a running `vbg run` without its preview window.

Two action sources, each with `poll_actions() -> list[str]` like the preview window
(vbg.sinks.PreviewSink), which the live loop polls once per frame:

  ControlSocket  a Unix datagram socket; `vbg ctl next|prev|blur [K]|pause|mirror|quit|
                 background NAME` sends one command to it
  SignalActions  SIGUSR1 = next background, SIGUSR2 = previous (`pkill -USR1 -f "vbg run"`
                 from a hotkey daemon)

Actions: next_background, prev_background, blur, pause, mirror, quit, and the
parameterised background:NAME (any --background value) and blur:K (blur on, kernel K).
A datagram socket needs no thread and no connection handling: each command is one
datagram, read without blocking when the loop polls.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from vbg import VbgError

log = logging.getLogger(__name__)

SIMPLE_COMMANDS = {
    "next": "next_background",
    "prev": "prev_background",
    "previous": "prev_background",
    "blur": "blur",
    "pause": "pause",
    "mirror": "mirror",
    "quit": "quit",
}
MAX_DATAGRAM = 4096


def default_socket_path() -> Path:
    """$XDG_RUNTIME_DIR/vbg.sock (private to the user), else /tmp/vbg-UID.sock."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "vbg.sock"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"vbg-{uid}.sock"


def parse_command(text: str) -> str:
    """'next' -> 'next_background', 'blur 61' -> 'blur:61', 'background rome-colosseum'
    -> 'background:rome-colosseum'. VbgError for anything else."""
    words = text.strip().split(None, 1)
    if not words:
        raise VbgError("empty control command")
    cmd, arg = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
    if cmd == "blur" and arg:
        if not arg.isdigit() or int(arg) < 1:
            raise VbgError(f"blur strength must be a positive integer, not {arg!r}")
        return f"blur:{int(arg)}"
    if cmd in SIMPLE_COMMANDS and not arg:
        return SIMPLE_COMMANDS[cmd]
    if cmd in ("background", "bg") and arg:
        return f"background:{arg}"
    raise VbgError(
        f"unknown control command {text.strip()!r}; use next, prev, blur [K], pause, mirror, "
        "quit or background NAME"
    )


def send_command(text: str, path: str | Path | None = None) -> str:
    """Sends one command to a running `vbg run`; returns the action it maps to."""
    action = parse_command(text)
    path = Path(path) if path is not None else default_socket_path()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(action.encode("utf-8"), str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise VbgError(f"no `vbg run` is listening on {path}; start one first") from None
        except OSError as e:
            raise VbgError(f"cannot send to {path}: {e.strerror or e}") from e
    return action


class ControlSocket:
    """The receiving end: bound at `path` for the life of a live run."""

    def __init__(self, path: str | Path | None = None) -> None:
        if not hasattr(socket, "AF_UNIX"):
            raise VbgError("the control socket needs Unix sockets (not on this platform)")
        self.path = Path(path) if path is not None else default_socket_path()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._bind()
        except BaseException:
            self._sock.close()
            raise
        self._sock.setblocking(False)
        self._closed = False

    def _bind(self) -> None:
        try:
            self._sock.bind(str(self.path))
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise VbgError(f"cannot open the control socket {self.path}: {e.strerror}") from e
            if self._alive():
                raise VbgError(
                    f"another vbg run is using the control socket {self.path}; "
                    "give this one --control OTHER.sock"
                ) from e
            self.path.unlink(missing_ok=True)  # left behind by a run that was killed
            self._sock.bind(str(self.path))
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)  # only this user may steer the camera

    def _alive(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(str(self.path))
            except OSError:
                return False
        return True

    def poll_actions(self) -> list[str]:
        actions = []
        while not self._closed:
            try:
                data = self._sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            text = data.decode("utf-8", "replace").strip()
            if text:
                actions.append(text)
        return actions

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._sock.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> ControlSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SignalActions:
    """SIGUSR1 -> next_background, SIGUSR2 -> prev_background (main thread only; on other
    threads or platforms without these signals it does nothing)."""

    SIGNALS = {"SIGUSR1": "next_background", "SIGUSR2": "prev_background"}

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._previous: dict[int, Any] = {}
        for name, action in self.SIGNALS.items():
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                self._previous[signum] = signal.signal(signum, self._handler(action))
            except ValueError:  # not the main thread
                break

    def _handler(self, action: str) -> Any:
        def handle(signum: int, frame: FrameType | None) -> None:
            self._pending.append(action)

        return handle

    def poll_actions(self) -> list[str]:
        actions, self._pending = self._pending, []
        return actions

    def close(self) -> None:
        for signum, old in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, old)
        self._previous = {}

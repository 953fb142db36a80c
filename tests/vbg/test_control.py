"""Control without the preview window: vbg ctl over a Unix socket, and SIGUSR1/SIGUSR2,
switching backgrounds on the real live loop (fake camera, recording sink)."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from tests.vbg.test_pipeline import ConstEngine, FakeSource, RecordingSink, fake_processor
from vbg import VbgError
from vbg.cli import main
from vbg.control import ControlSocket, SignalActions, parse_command, send_command
from vbg.pipeline import run_live

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX only")

RED, BLUE, GREEN = (0, 0, 255), (255, 0, 0), (0, 255, 0)


@pytest.fixture
def sock_path():
    d = tempfile.mkdtemp(prefix="vbgt", dir="/tmp")  # AF_UNIX paths are short (108 bytes)
    yield Path(d) / "c.sock"
    for p in Path(d).iterdir():
        p.unlink()
    os.rmdir(d)


class ScriptedSource(FakeSource):
    """Runs a callback before delivering frame i: commands arrive while the loop runs."""

    def __init__(self, n: int, script: dict) -> None:
        super().__init__(n)
        self.script = script

    def read(self, timeout=1.0):
        if self.i in self.script:
            self.script.pop(self.i)()
        return super().read(timeout)


def _colours(sink):
    return [tuple(int(v) for v in f[10, 10]) for f in sink.frames]


def test_parse_command():
    assert parse_command("next") == "next_background"
    assert parse_command("prev") == "prev_background"
    assert parse_command("blur") == "blur"
    assert parse_command("blur 61") == "blur:61"
    assert parse_command("background rome-colosseum") == "background:rome-colosseum"
    for bad in ("", "jump", "blur x", "background", "next 3"):
        with pytest.raises(VbgError):
            parse_command(bad)


def test_ctl_switches_backgrounds_on_a_running_loop(tiny_card, sock_path):
    ctl = ControlSocket(sock_path)
    sink = RecordingSink()
    src = ScriptedSource(
        100,
        {
            2: lambda: send_command("next", sock_path),
            4: lambda: send_command("background color:#00ff00", sock_path),
            6: lambda: send_command("blur 9", sock_path),
            8: lambda: send_command("background nope-not-a-background", sock_path),
            9: lambda: send_command("quit", sock_path),
        },
    )
    p = fake_processor(tiny_card, ConstEngine(-20.0))  # all background: output = background
    try:
        res = run_live(
            src,
            outputs=[sink],
            processor=p,
            backgrounds=["color:#ff0000", "color:#0000ff"],
            controls=[ctl],
        )
    finally:
        ctl.close()
    assert res.stopped_by == "quit"
    # A command sent while frame i is read is polled before frame i+1 is processed.
    c = _colours(sink)
    assert c[:3] == [RED] * 3
    assert c[3:5] == [BLUE, BLUE]  # next
    assert c[5:7] == [GREEN, GREEN]  # background NAME (a new one, appended)
    assert c[7] == (7, 7, 7)  # blur 9 of a uniform frame: the frame itself
    assert c[9] == (9, 9, 9)  # a bad name is only a warning: blur stays, the loop runs
    assert len(c) == 10
    assert not sock_path.exists()  # closing removes the socket


def test_sigusr1_is_next_background(tiny_card):
    signals = SignalActions()
    sink = RecordingSink()
    src = ScriptedSource(5, {2: lambda: os.kill(os.getpid(), signal.SIGUSR1)})
    p = fake_processor(tiny_card, ConstEngine(-20.0))
    try:
        run_live(
            src,
            outputs=[sink],
            processor=p,
            backgrounds=["color:#ff0000", "color:#0000ff"],
            controls=[signals],
        )
    finally:
        signals.close()
    assert _colours(sink) == [RED, RED, RED, BLUE, BLUE]
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # restored


def test_stale_socket_is_replaced_and_live_one_refused(sock_path):
    a = ControlSocket(sock_path)
    with pytest.raises(VbgError, match="another vbg run"):
        ControlSocket(sock_path)
    a._sock.close()  # killed without cleanup: the file stays
    assert sock_path.exists()
    b = ControlSocket(sock_path)
    send_command("pause", sock_path)
    assert b.poll_actions() == ["pause"]
    b.close()


def test_vbg_ctl_without_a_run(sock_path, capsys):
    assert main(["ctl", "next", "--socket", str(sock_path)]) == 1
    assert "no `vbg run` is listening" in capsys.readouterr().err
    with ControlSocket(sock_path) as s:
        assert main(["ctl", "blur", "31", "--socket", str(sock_path)]) == 0
        assert s.poll_actions() == ["blur:31"]

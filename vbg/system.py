"""What `vbg doctor` and `vbg cameras` read from the operating system, behind one object.

Every probe of the machine (files under /sys and /proc, device nodes in /dev, `modinfo`,
the current user's groups) goes through a `System`, so tests can hand doctor a faked
machine (`FakeSystem`: module loaded or not, devices present or not, caps right or wrong)
and check every branch without a camera or root.
"""

from __future__ import annotations

import glob
import grp
import os
import platform
import shutil
import struct
import subprocess
from dataclasses import dataclass, field

# V4L2 ioctls (linux/videodev2.h): request = dir << 30 | size << 16 | 'V' << 8 | nr.
_IOR, _IOWR = 2, 3
_QUERYCAP_SIZE, _FMTDESC_SIZE, _FRMSIZE_SIZE = 104, 64, 44
VIDIOC_QUERYCAP = _IOR << 30 | _QUERYCAP_SIZE << 16 | ord("V") << 8 | 0
VIDIOC_ENUM_FMT = _IOWR << 30 | _FMTDESC_SIZE << 16 | ord("V") << 8 | 2
VIDIOC_ENUM_FRAMESIZES = _IOWR << 30 | _FRMSIZE_SIZE << 16 | ord("V") << 8 | 74
CAP_VIDEO_CAPTURE, CAP_VIDEO_OUTPUT, CAP_DEVICE_CAPS = 0x1, 0x2, 0x80000000
_BUF_TYPE_VIDEO_CAPTURE = 1
_FRMSIZE_DISCRETE = 1


@dataclass(frozen=True)
class V4L2Device:
    """What VIDIOC_QUERYCAP and the format enumeration say about one /dev/video* node."""

    path: str
    driver: str
    card: str
    capture: bool  # it delivers frames (a camera, or a loopback that is being fed)
    output: bool  # frames can be written to it (a loopback device)
    # fourcc -> frame sizes (width, height); empty when the driver lists none
    formats: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def query_v4l2(path: str) -> V4L2Device | None:
    """Capabilities and capture formats/sizes of a V4L2 node by ioctl; None if it cannot
    be opened or is not a V4L2 device."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        buf = bytearray(_QUERYCAP_SIZE)
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf)
        driver, card = _cstr(buf[0:16]), _cstr(buf[16:48])
        caps, device_caps = struct.unpack_from("<II", buf, 84)
        if caps & CAP_DEVICE_CAPS:
            caps = device_caps  # what this node does, not the whole driver
        formats: dict[str, list[tuple[int, int]]] = {}
        if caps & CAP_VIDEO_CAPTURE:
            formats = _enum_formats(fd)
        return V4L2Device(
            path,
            driver,
            card,
            bool(caps & CAP_VIDEO_CAPTURE),
            bool(caps & CAP_VIDEO_OUTPUT),
            formats,
        )
    except OSError:
        return None
    finally:
        os.close(fd)


def _enum_formats(fd: int) -> dict[str, list[tuple[int, int]]]:
    import fcntl

    formats: dict[str, list[tuple[int, int]]] = {}
    for index in range(64):
        desc = bytearray(struct.pack("<II", index, _BUF_TYPE_VIDEO_CAPTURE) + bytes(56))
        try:
            fcntl.ioctl(fd, VIDIOC_ENUM_FMT, desc)
        except OSError:
            break  # EINVAL: no more formats
        (pixfmt,) = struct.unpack_from("<I", desc, 44)
        fourcc = pixfmt.to_bytes(4, "little").decode("ascii", "replace").strip()
        sizes = []
        for k in range(256):
            fs = bytearray(struct.pack("<III", k, pixfmt, 0) + bytes(32))
            try:
                fcntl.ioctl(fd, VIDIOC_ENUM_FRAMESIZES, fs)
            except OSError:
                break
            kind, w, h = struct.unpack_from("<III", fs, 8)
            if kind != _FRMSIZE_DISCRETE:  # stepwise/continuous: report the largest
                (w,), (h,) = struct.unpack_from("<I", fs, 16), struct.unpack_from("<I", fs, 28)
                sizes.append((w, h))
                break
            sizes.append((w, h))
        formats[fourcc] = sizes
    return formats


class System:
    """The real machine. Each method answers one question and never raises for "no"."""

    def platform(self) -> str:
        """'linux', 'darwin' or 'windows'."""
        return platform.system().lower()

    def read_text(self, path: str) -> str | None:
        """Contents of a small text file (sysfs, procfs, config), None if unreadable."""
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return []

    def glob(self, pattern: str) -> list[str]:
        return sorted(glob.glob(pattern))

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def access_rw(self, path: str) -> bool:
        return os.access(path, os.R_OK | os.W_OK)

    def device_group(self, path: str) -> str | None:
        """Group owning a device node (e.g. 'video'), None if unknown."""
        try:
            return grp.getgrgid(os.stat(path).st_gid).gr_name
        except (OSError, KeyError):
            return None

    def user_groups(self) -> list[str]:
        names = []
        for gid in os.getgroups():
            try:
                names.append(grp.getgrgid(gid).gr_name)
            except KeyError:
                continue
        return names

    def which(self, program: str) -> str | None:
        return shutil.which(program)

    def v4l2(self, path: str) -> V4L2Device | None:
        return query_v4l2(path)

    def run(self, argv: list[str]) -> tuple[int, str]:
        """(exit status, stdout) of a short command; (127, '') if it cannot run."""
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return 127, ""
        return p.returncode, p.stdout


@dataclass
class FakeSystem(System):
    """A made-up machine for tests: files and command outputs given as dicts.

    files: path -> contents (a path listed here exists; a folder exists if any file is
    under it). commands: the argv joined by spaces -> (status, stdout); others give 127.
    """

    system: str = "linux"
    files: dict[str, str] = field(default_factory=dict)
    commands: dict[str, tuple[int, str]] = field(default_factory=dict)
    writable: set[str] = field(default_factory=set)
    groups_of_devices: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    programs: set[str] = field(default_factory=set)
    devices: dict[str, V4L2Device] = field(default_factory=dict)

    def platform(self) -> str:
        return self.system

    def read_text(self, path: str) -> str | None:
        return self.files.get(path)

    def listdir(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted({p[len(prefix) :].split("/")[0] for p in self.files if p.startswith(prefix)})

    def glob(self, pattern: str) -> list[str]:
        import fnmatch

        return sorted(p for p in self.files if fnmatch.fnmatch(p, pattern))

    def exists(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return path in self.files or any(p.startswith(prefix) for p in self.files)

    def access_rw(self, path: str) -> bool:
        return path in self.writable

    def device_group(self, path: str) -> str | None:
        return self.groups_of_devices.get(path)

    def user_groups(self) -> list[str]:
        return list(self.groups)

    def which(self, program: str) -> str | None:
        return f"/usr/bin/{program}" if program in self.programs else None

    def v4l2(self, path: str) -> V4L2Device | None:
        return self.devices.get(path)

    def run(self, argv: list[str]) -> tuple[int, str]:
        return self.commands.get(" ".join(argv), (127, ""))

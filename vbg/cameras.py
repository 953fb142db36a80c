"""`vbg cameras`: the video devices of this machine, with their formats and sizes.

On Linux the V4L2 nodes are read by ioctl (through `vbg.system.System`, so tests can fake
them); elsewhere OpenCV probes the first few indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vbg.system import System

LOOPBACK_DRIVER = "v4l2 loopback"
PROBE_INDICES = 5


@dataclass(frozen=True)
class CameraInfo:
    device: str  # what --camera takes: /dev/videoN or an index
    name: str
    kind: str  # "camera" | "virtual (v4l2loopback)" | "output only" | "metadata/other"
    formats: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def is_camera(self) -> bool:
        return self.kind == "camera"


def _video_nodes(system: System) -> list[str]:
    nodes = system.glob("/dev/video*")
    return sorted(nodes, key=lambda p: (len(p), p))


def list_cameras(system: System | None = None) -> list[CameraInfo]:
    system = system or System()
    if system.platform() != "linux":
        return _probe_opencv()
    out = []
    for node in _video_nodes(system):
        base = node.rsplit("/", 1)[-1]
        name = (system.read_text(f"/sys/class/video4linux/{base}/name") or "").strip()
        dev = system.v4l2(node)
        if dev is None:
            out.append(CameraInfo(node, name or "?", "not readable (permissions?)"))
            continue
        if dev.driver == LOOPBACK_DRIVER:
            kind = "virtual (v4l2loopback)"
        elif dev.capture and dev.formats:
            kind = "camera"
        elif dev.output:
            kind = "output only"
        else:
            kind = "metadata/other"  # UVC cameras expose a second node for metadata
        out.append(CameraInfo(node, name or dev.card, kind, dev.formats))
    return out


def _probe_opencv() -> list[CameraInfo]:
    """Windows/macOS: no device list without extra packages, so open indices 0..4."""
    import cv2

    from vbg.quiet import quiet_opencv

    out = []
    with quiet_opencv():
        for i in range(PROBE_INDICES):
            cap = cv2.VideoCapture(i)
            try:
                if not cap.isOpened():
                    continue
                w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
                h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
                out.append(CameraInfo(str(i), f"camera {i}", "camera", {"default": [(w, h)]}))
            finally:
                cap.release()
    return out


def format_cameras(cams: list[CameraInfo], *, max_sizes: int = 6) -> str:
    if not cams:
        return "no video devices found (vbg doctor explains what to check)"
    lines = []
    for c in cams:
        lines.append(f"{c.device}  {c.name}  [{c.kind}]")
        for fourcc, sizes in c.formats.items():
            uniq = sorted(set(sizes), key=lambda s: -s[0] * s[1])
            shown = ", ".join(f"{w}x{h}" for w, h in uniq[:max_sizes])
            more = f" (+{len(uniq) - max_sizes} more)" if len(uniq) > max_sizes else ""
            lines.append(f"    {fourcc:<5} {shown or 'sizes not listed'}{more}")
    return "\n".join(lines)

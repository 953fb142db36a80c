"""`vbg doctor`: is this machine ready to run vbg, and if not, the exact command to fix it.

Checks, in order: the virtual camera (Linux: v4l2loopback installed, loaded, a loopback
device, exclusive_caps=1 for Chrome, permissions on /dev/video*, loading at boot;
Windows/macOS: the OBS virtual camera), the cameras, the inference engines, and the
default model against its card. Everything the checks read comes from a
`vbg.system.System`, so tests run them on faked machines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vbg.cameras import CameraInfo, list_cameras
from vbg.system import System

OK, WARN, FAIL = "ok", "warn", "FAIL"
MODULE = "v4l2loopback"
LOOPBACK_OPTIONS = "devices=1 exclusive_caps=1 card_label=vbg"
MODPROBE = f"sudo modprobe {MODULE} {LOOPBACK_OPTIONS}"
RELOAD = f"sudo modprobe -r {MODULE} && {MODPROBE}"
PERSIST = (
    f"echo {MODULE} | sudo tee /etc/modules-load.d/{MODULE}.conf && "
    f'echo "options {MODULE} {LOOPBACK_OPTIONS}" | sudo tee /etc/modprobe.d/{MODULE}.conf'
)
OBS_URL = "https://obsproject.com"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK | WARN | FAIL
    detail: str
    fix: str = ""  # the command (or step) that fixes it; empty when nothing is wrong


# ---------------------------------------------------------------------------- Linux camera


def _install_command(system: System) -> str:
    """The package manager line for this distribution (from /etc/os-release)."""
    text = (system.read_text("/etc/os-release") or "").lower()
    ids = " ".join(
        line.split("=", 1)[1].strip('"')
        for line in text.splitlines()
        if line.startswith(("id=", "id_like="))
    )
    if any(d in ids for d in ("fedora", "rhel", "centos")):
        return "sudo dnf install v4l2loopback  (RPM Fusion)"
    if "arch" in ids:
        return "sudo pacman -S v4l2loopback-dkms linux-headers"
    if "suse" in ids:
        return "sudo zypper install v4l2loopback-kmp-default"
    return "sudo apt install v4l2loopback-dkms linux-headers-$(uname -r)"


def module_loaded(system: System) -> bool:
    if system.exists(f"/sys/module/{MODULE}"):
        return True
    modules = system.read_text("/proc/modules") or ""
    return any(line.split(" ", 1)[0] == MODULE for line in modules.splitlines())


def loopback_devices(system: System) -> list[str]:
    """/dev/videoN nodes made by v4l2loopback (virtual devices in sysfs)."""
    names = system.listdir("/sys/devices/virtual/video4linux")
    return [f"/dev/{n}" for n in sorted(names, key=lambda n: (len(n), n))]


def _exclusive_caps(system: System) -> list[bool] | None:
    """The module's exclusive_caps per device (sysfs shows 'Y,N,...' or '1,0,...')."""
    text = system.read_text(f"/sys/module/{MODULE}/parameters/exclusive_caps")
    if text is None:
        return None
    return [v.strip().upper() in ("Y", "1") for v in text.strip().split(",") if v.strip()]


def _persistent(system: System) -> tuple[bool, bool]:
    """(loaded at boot by modules-load.d, options with exclusive_caps=1 in modprobe.d)."""
    load = any(
        MODULE in (system.read_text(p) or "").split()
        for p in system.glob("/etc/modules-load.d/*.conf") + ["/etc/modules"]
    )
    options = False
    for p in system.glob("/etc/modprobe.d/*.conf"):
        for line in (system.read_text(p) or "").splitlines():
            words = line.split()
            if words[:2] == ["options", MODULE] and "exclusive_caps=1" in line:
                options = True
    return load, options


def linux_vcam_checks(system: System) -> list[Check]:
    checks: list[Check] = []
    loaded = module_loaded(system)
    installed = loaded or system.run(["modinfo", MODULE])[0] == 0
    if not installed:
        checks.append(
            Check(
                "v4l2loopback installed",
                FAIL,
                "the kernel module is not installed",
                _install_command(system),
            )
        )
    else:
        checks.append(Check("v4l2loopback installed", OK, "kernel module found"))
    if loaded:
        checks.append(Check("v4l2loopback loaded", OK, "module is loaded"))
    else:
        checks.append(Check("v4l2loopback loaded", FAIL, "module is not loaded", MODPROBE))
    devices = loopback_devices(system) if loaded else []
    if devices:
        checks.append(Check("loopback device", OK, ", ".join(devices)))
        caps = _exclusive_caps(system)
        first = caps[: len(devices)] if caps else []
        if caps is None:
            checks.append(
                Check("exclusive_caps=1", WARN, "cannot read the module parameter", RELOAD)
            )
        elif any(first):
            checks.append(Check("exclusive_caps=1", OK, "Chrome and other WebRTC apps list it"))
        else:
            checks.append(
                Check(
                    "exclusive_caps=1",
                    FAIL,
                    "not set: Chrome, Meet, Teams (web) and Zoom will not list the camera",
                    RELOAD,
                )
            )
    else:
        why = "no v4l2loopback device" if loaded else "no device until the module is loaded"
        checks.append(Check("loopback device", FAIL, why, RELOAD if loaded else MODPROBE))
    checks.append(_permissions_check(system))
    load, options = _persistent(system)
    if load and options:
        checks.append(Check("loaded at boot", OK, "modules-load.d and modprobe.d are set"))
    else:
        missing = []
        if not load:
            missing.append(f"no /etc/modules-load.d entry for {MODULE}")
        if not options:
            missing.append("no 'options v4l2loopback ... exclusive_caps=1' in /etc/modprobe.d")
        checks.append(Check("loaded at boot", WARN, "; ".join(missing), PERSIST))
    return checks


def _permissions_check(system: System) -> Check:
    nodes = system.glob("/dev/video*")
    if not nodes:
        return Check(
            "/dev/video* permissions",
            FAIL,
            "no /dev/video* devices at all",
            f"{MODPROBE}  (and plug in a camera)",
        )
    denied = [n for n in nodes if not system.access_rw(n)]
    if not denied:
        return Check("/dev/video* permissions", OK, f"read/write on {len(nodes)} device(s)")
    group = system.device_group(denied[0]) or "video"
    return Check(
        "/dev/video* permissions",
        FAIL,
        f"no read/write access to {', '.join(denied)} (group {group})",
        f"sudo usermod -aG {group} $USER  (then log out and back in)",
    )


# ---------------------------------------------------------------------------- other OSes


OBS_PATHS = {
    "windows": [
        "C:/Program Files/obs-studio/bin/64bit/obs-virtualcam-module64.dll",
        "C:/Program Files/obs-studio/data/obs-plugins/win-dshow/obs-virtualcam-module64.dll",
    ],
    "darwin": [
        "/Library/CoreMediaIO/Plug-Ins/DAL/obs-mac-virtualcam.plugin",
        "/Applications/OBS.app/Contents/Library/SystemExtensions",
    ],
}


def obs_vcam_check(system: System) -> Check:
    found = [p for p in OBS_PATHS.get(system.platform(), []) if system.exists(p)]
    if found:
        return Check("OBS virtual camera", OK, found[0])
    return Check(
        "OBS virtual camera",
        FAIL,
        "OBS Studio (26 or newer) is not installed",
        f"install OBS Studio from {OBS_URL}, then start its virtual camera once "
        "(Tools > Start Virtual Camera) so the system registers it",
    )


# ---------------------------------------------------------------------------- everywhere


def pyvirtualcam_check() -> Check:
    import importlib.util

    if importlib.util.find_spec("pyvirtualcam") is None:
        return Check("pyvirtualcam", FAIL, "not installed", "pip install pyvirtualcam")
    return Check("pyvirtualcam", OK, "installed")


def camera_check(cams: list[CameraInfo]) -> Check:
    real = [c for c in cams if c.is_camera]
    if real:
        return Check("cameras", OK, "; ".join(f"{c.device} {c.name}" for c in real))
    return Check(
        "cameras",
        FAIL,
        "no camera found",
        "plug in a camera (then `vbg cameras`); `sudo dmesg | grep -i uvc` shows why one fails",
    )


def engine_checks() -> list[Check]:
    from vbg.engines import _cuda_available, _is_available, engine_info, engine_names, install_hint

    checks = []
    any_ok = False
    cuda = _cuda_available()
    for name in engine_names():
        info = engine_info(name)
        if _is_available(info):
            any_ok = True
            # Only the devices this machine can use: "cuda" needs a GPU, not a CUDA build.
            usable = [d for d in info.devices if d != "cuda" or cuda]
            checks.append(Check(f"engine {name}", OK, f"available ({', '.join(usable)})"))
        else:
            if info.devices == ("cuda",):  # GPU-only: a missing GPU is the usual reason
                why = "not available: needs an NVIDIA GPU (nvidia-smi lists it) and CUDA"
                fix = f"on a machine with an NVIDIA driver: {install_hint(info)}"
            else:
                why, fix = "not available: its packages are not installed", install_hint(info)
            checks.append(Check(f"engine {name}", WARN, why, fix))
    if not any_ok:
        checks.append(
            Check(
                "engines",
                FAIL,
                "no inference engine can run",
                "pip install 'vbg[onnxruntime]' or pip install onnxruntime",
            )
        )
    return checks


def model_check() -> Check:
    """The default model and every other bundled card (its INT8 copy, the --quality high
    model): each file a card names is there and matches its sha256."""
    from vbg import VbgError
    from vbg.assets import default_card_path
    from vbg.card import load_card

    path = default_card_path()
    fix = "reinstall vbg (pip install --force-reinstall vbg), or in a checkout: git lfs pull"
    if not path.is_file():
        return Check("default model", FAIL, f"{path} is missing", fix)
    names = []
    for card_path in [path, *sorted(p for p in path.parent.glob("*.json") if p != path)]:
        try:
            card = load_card(card_path)
            for role in card.files:
                card.verify_file(role)
        except VbgError as e:
            return Check("default model", FAIL, str(e), fix)
        names.append(card.name)
    return Check(
        "default model",
        OK,
        f"{', '.join(names)}: every file matches its card's sha256",
    )


def run_checks(
    system: System | None = None,
    *,
    engines: Callable[[], list[Check]] = engine_checks,
    model: Callable[[], Check] = model_check,
) -> list[Check]:
    system = system or System()
    plat = system.platform()
    checks = linux_vcam_checks(system) if plat == "linux" else [obs_vcam_check(system)]
    checks.append(pyvirtualcam_check())
    checks.append(camera_check(list_cameras(system)))
    checks.extend(engines())
    checks.append(model())
    return checks


def format_report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"[{c.status:^4}] {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != OK:
            lines.append(f"{'':7}{'':<{width}}  fix: {c.fix}")
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    lines.append("")
    lines.append(
        f"{failed} check(s) failed, {warned} warning(s)"
        if failed or warned
        else "all checks passed"
    )
    return "\n".join(lines)


def doctor(system: System | None = None) -> int:
    """Prints the report; returns the exit status (1 if a check failed)."""
    checks = run_checks(system)
    print(format_report(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0

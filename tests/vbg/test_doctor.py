"""vbg doctor / cameras on faked machines: every check's pass and fail branch."""

from __future__ import annotations

import pytest

from vbg import doctor
from vbg.cameras import format_cameras, list_cameras
from vbg.doctor import FAIL, OK, WARN, Check, format_report, run_checks
from vbg.system import FakeSystem, System, V4L2Device

WEBCAM = V4L2Device(
    "/dev/video0",
    "uvcvideo",
    "HD Webcam",
    True,
    False,
    {"MJPG": [(1280, 720), (1920, 1080)], "YUYV": [(640, 480)]},
)
UVC_META = V4L2Device("/dev/video1", "uvcvideo", "HD Webcam", False, False, {})
LOOPBACK = V4L2Device("/dev/video2", "v4l2 loopback", "vbg", False, True, {})


def _no_engines() -> list[Check]:
    return [Check("engine onnxruntime", OK, "available")]


def _model() -> Check:
    return Check("default model", OK, "matches")


def healthy(**over) -> FakeSystem:
    """A machine where everything is set up: webcam, loaded module with exclusive_caps."""
    files = {
        "/proc/modules": "v4l2loopback 49152 0 - Live 0x0\nuvcvideo 1 0 - Live 0x0\n",
        "/sys/module/v4l2loopback/parameters/exclusive_caps": "Y,N,N,N,N,N,N,N\n",
        "/sys/devices/virtual/video4linux/video2/name": "vbg\n",
        "/sys/class/video4linux/video0/name": "HD Webcam\n",
        "/sys/class/video4linux/video1/name": "HD Webcam\n",
        "/sys/class/video4linux/video2/name": "vbg\n",
        "/dev/video0": "",
        "/dev/video1": "",
        "/dev/video2": "",
        "/etc/modules-load.d/v4l2loopback.conf": "v4l2loopback\n",
        "/etc/modprobe.d/v4l2loopback.conf": "options v4l2loopback devices=1 exclusive_caps=1\n",
    }
    fs = FakeSystem(
        files=files,
        writable={"/dev/video0", "/dev/video1", "/dev/video2"},
        devices={d.path: d for d in (WEBCAM, UVC_META, LOOPBACK)},
        commands={"modinfo v4l2loopback": (0, "filename: v4l2loopback.ko\n")},
        groups_of_devices={"/dev/video0": "video"},
    )
    for k, v in over.items():
        setattr(fs, k, v)
    return fs


def checks_of(system: System) -> dict[str, Check]:
    return {c.name: c for c in run_checks(system, engines=_no_engines, model=_model)}


def test_healthy_machine_passes():
    checks = checks_of(healthy())
    assert all(c.status == OK for c in checks.values()), format_report(list(checks.values()))
    assert "/dev/video0 HD Webcam" in checks["cameras"].detail


def test_module_not_installed():
    fs = FakeSystem(files={"/etc/os-release": "ID=ubuntu\nID_LIKE=debian\n"})
    c = checks_of(fs)
    assert c["v4l2loopback installed"].status == FAIL
    assert c["v4l2loopback installed"].fix.startswith("sudo apt install v4l2loopback-dkms")
    assert c["v4l2loopback loaded"].fix == doctor.MODPROBE
    assert c["loopback device"].status == FAIL
    assert c["/dev/video* permissions"].status == FAIL
    assert c["cameras"].status == FAIL


def test_install_command_follows_the_distribution():
    fs = FakeSystem(files={"/etc/os-release": 'ID="fedora"\n'})
    assert "dnf" in checks_of(fs)["v4l2loopback installed"].fix
    fs = FakeSystem(files={"/etc/os-release": "ID=arch\n"})
    assert "pacman" in checks_of(fs)["v4l2loopback installed"].fix


def test_installed_but_not_loaded():
    fs = healthy()
    fs.files = {k: v for k, v in fs.files.items() if "v4l2loopback" not in k and "virtual" not in k}
    fs.files["/proc/modules"] = "uvcvideo 1 0 - Live 0x0\n"
    c = checks_of(fs)
    assert c["v4l2loopback installed"].status == OK  # modinfo finds it
    assert c["v4l2loopback loaded"].status == FAIL
    assert "modprobe v4l2loopback" in c["v4l2loopback loaded"].fix
    assert "exclusive_caps=1" in c["v4l2loopback loaded"].fix
    assert c["loaded at boot"].status == WARN
    assert "/etc/modprobe.d/v4l2loopback.conf" in c["loaded at boot"].fix


def test_loaded_module_without_devices():
    fs = healthy()
    del fs.files["/sys/devices/virtual/video4linux/video2/name"]
    c = checks_of(fs)
    assert c["loopback device"].status == FAIL
    assert c["loopback device"].fix == doctor.RELOAD


def test_exclusive_caps_wrong_is_a_failure_with_reload_fix():
    fs = healthy()
    fs.files["/sys/module/v4l2loopback/parameters/exclusive_caps"] = "N,N,N,N\n"
    c = checks_of(fs)
    assert c["exclusive_caps=1"].status == FAIL
    assert "Chrome" in c["exclusive_caps=1"].detail
    assert c["exclusive_caps=1"].fix == doctor.RELOAD
    # The numeric form some kernels print.
    fs.files["/sys/module/v4l2loopback/parameters/exclusive_caps"] = "1,0\n"
    assert checks_of(fs)["exclusive_caps=1"].status == OK


def test_permissions_name_the_device_group():
    fs = healthy(writable={"/dev/video2"})
    c = checks_of(fs)["/dev/video* permissions"]
    assert c.status == FAIL
    assert "/dev/video0" in c.detail
    assert c.fix.startswith("sudo usermod -aG video $USER")


def test_persistence_needs_both_files():
    fs = healthy()
    del fs.files["/etc/modprobe.d/v4l2loopback.conf"]
    c = checks_of(fs)["loaded at boot"]
    assert c.status == WARN and "modprobe.d" in c.detail


def test_windows_and_macos_check_obs():
    c = checks_of(FakeSystem(system="windows"))
    assert c["OBS virtual camera"].status == FAIL
    assert doctor.OBS_URL in c["OBS virtual camera"].fix
    assert "v4l2loopback loaded" not in c
    mac = FakeSystem(system="darwin", files={doctor.OBS_PATHS["darwin"][0] + "/Info.plist": ""})
    assert checks_of(mac)["OBS virtual camera"].status == OK


def test_report_prints_each_fix_and_exit_status(capsys, monkeypatch):
    monkeypatch.setattr(doctor, "engine_checks", _no_engines)
    monkeypatch.setattr(doctor, "model_check", _model)
    monkeypatch.setattr(
        doctor, "run_checks", lambda s: run_checks(s, engines=_no_engines, model=_model)
    )
    assert doctor.doctor(FakeSystem()) == 1
    out = capsys.readouterr().out
    assert out.count("fix: ") >= 5
    assert "[FAIL] v4l2loopback loaded" in out
    assert doctor.doctor(healthy()) == 0
    assert "all checks passed" in capsys.readouterr().out


def test_real_engine_and_model_checks_run():
    names = [c.name for c in doctor.engine_checks()]
    assert "engine onnxruntime" in names
    assert doctor.model_check().status == OK  # the bundled model matches its card


def test_cameras_lists_formats_and_kinds():
    cams = list_cameras(healthy())
    kinds = {c.device: c.kind for c in cams}
    assert kinds == {
        "/dev/video0": "camera",
        "/dev/video1": "metadata/other",
        "/dev/video2": "virtual (v4l2loopback)",
    }
    text = format_cameras(cams)
    assert "MJPG  1920x1080, 1280x720" in text
    assert "YUYV  640x480" in text


def test_cameras_unreadable_node():
    fs = healthy()
    fs.devices = {}
    assert {c.kind for c in list_cameras(fs)} == {"not readable (permissions?)"}


@pytest.mark.parametrize("argv", [["doctor"], ["cameras"], ["info"]])
def test_cli_commands(argv, capsys):
    from vbg.cli import main

    rc = main(argv)
    out = capsys.readouterr().out
    assert out.strip()
    if argv == ["doctor"]:
        # This machine (CI, the dev box) has no /dev/video*: doctor must fail and say so.
        import glob

        if not glob.glob("/dev/video*"):
            assert rc == 1 and "fix:" in out
    else:
        assert rc == 0


def test_query_v4l2_on_a_non_v4l2_file_is_none(tmp_path):
    from vbg.system import VIDIOC_ENUM_FMT, VIDIOC_QUERYCAP, query_v4l2

    # The ioctl numbers of linux/videodev2.h.
    assert VIDIOC_QUERYCAP == 0x80685600
    assert VIDIOC_ENUM_FMT == 0xC0405602
    f = tmp_path / "video9"
    f.write_bytes(b"")
    assert query_v4l2(str(f)) is None
    assert query_v4l2(str(tmp_path / "missing")) is None


def test_model_check_covers_every_bundled_card(tiny_card, tmp_path, monkeypatch):
    import dataclasses
    import shutil

    import vbg.assets
    from vbg.card import load_card

    models = tmp_path / "models"
    models.mkdir()
    card = load_card(tiny_card)
    for name in card.files.values():
        shutil.copy(tiny_card.parent / name, models / name)
    dataclasses.replace(card, name="default").save(models / "default.json")
    dataclasses.replace(card, name="hq").save(models / "hq.json")
    monkeypatch.setattr(vbg.assets, "assets_dir", lambda: tmp_path)
    check = doctor.model_check()
    assert check.status == OK and "default, hq" in check.detail
    # The hq card names a file whose bytes changed: the check fails and says which.
    onnx = card.files["onnx"]
    hq = dataclasses.replace(
        card, name="hq", files={"onnx": "hq.onnx"}, sha256={"hq.onnx": card.sha256[onnx]}
    )
    hq.save(models / "hq.json")
    (models / "hq.onnx").write_bytes((models / onnx).read_bytes()[:-1])
    check = doctor.model_check()
    assert check.status == FAIL and "hq.onnx" in check.detail

"""OCI bundles: an overlayfs root made of image layers, and the ``config.json`` beside it."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path
from typing import Any

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
MNT_DETACH = 2

# Docker's default capability set: enough for apt-get and pip, nothing that reaches the host.
CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
PIDS_LIMIT = 4096


def mount_overlay(lower: list[Path], upper: Path, work: Path, target: Path) -> None:
    """Stack ``lower`` (bottom first) under a writable ``upper`` at ``target``."""
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    lowerdir = ":".join(str(p) for p in reversed(lower))  # overlayfs wants the top layer first
    options = f"lowerdir={lowerdir},upperdir={upper},workdir={work}".encode()
    if _libc.mount(b"overlay", str(target).encode(), b"overlay", 0, options) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mounting the image's overlayfs at {target} failed: {os.strerror(err)}")


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (a bundle's config.json carries a token)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # it may have existed with looser bits


def unmount(target: Path) -> None:
    _libc.umount2(str(target).encode(), MNT_DETACH)


def _bind(source: str | Path, destination: str, readonly: bool = True) -> dict[str, Any]:
    options = ["rbind", "nosuid", "nodev"] + (["ro"] if readonly else ["rw"])
    return {"destination": destination, "type": "bind", "source": str(source), "options": options}


def config(
    *,
    rootfs: Path,
    args: list[str],
    env: dict[str, str],
    cwd: str,
    binds: list[tuple[str | Path, str, bool]],
    rlimits: list[dict[str, str | int]],
    netns: Path | None,
    cgroups_path: str | None,
    cpu: float | None = None,
    hostname: str = "skiff",
) -> dict[str, Any]:
    """An OCI runtime spec. ``netns=None`` shares the host's network (image builds)."""
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if netns is not None:
        namespaces.append({"type": "network", "path": str(netns)})
    caps = {k: CAPABILITIES for k in ("bounding", "effective", "permitted")}
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
        "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        "resources": {"pids": {"limit": PIDS_LIMIT}},
    }
    if cpu:
        linux["resources"]["cpu"] = {"quota": int(cpu * 100_000), "period": 100_000}
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
    ]
    mounts += [_bind(src, dst, ro) for src, dst, ro in binds]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": cwd,
            "capabilities": caps,
            "rlimits": rlimits,
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": False},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }


def add_devices(spec: dict[str, Any], paths: list[str]) -> None:
    """Give the container these character devices (GPUs), and allow them in its cgroup."""
    devices, allow = [], []
    for path in paths:
        st = os.stat(path)
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        devices.append({"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0})
        allow.append({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"})
    spec["linux"]["devices"] = devices
    spec["linux"]["resources"]["devices"] = [{"allow": False, "access": "rwm"}, *allow]

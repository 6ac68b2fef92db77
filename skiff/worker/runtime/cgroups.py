"""A parent cgroup per container that skiff owns, holding its memory limit.

The OCI runtime puts the container in a child (``<parent>/c``) and deletes that child
when the container exits. The parent outlives it, so after the exit we can still read
whether the kernel's OOM killer fired, and tell the caller "exceeded its memory limit"
rather than "crashed".
"""

from __future__ import annotations

import contextlib
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


class ContainerCgroup:
    def __init__(self, container_id: str, version: int, memory_mib: int | None) -> None:
        self.container_id = container_id
        self.version = version
        self.memory_mib = memory_mib
        self.relative = f"/skiff/{container_id}"

    @property
    def runtime_path(self) -> str:
        """``linux.cgroupsPath`` for the bundle: a child of our parent."""
        return self.relative + "/c"

    def _memory_dir(self) -> Path:
        return (ROOT / "memory" if self.version == 1 else ROOT) / self.relative.lstrip("/")

    def create(self) -> None:
        mem = self._memory_dir()
        if self.version == 2:
            _enable_controllers(ROOT / "skiff")
        mem.mkdir(parents=True, exist_ok=True)
        if self.version == 2:
            _enable_controllers(mem)
        if self.memory_mib:
            limit = str(self.memory_mib * 1024 * 1024)
            if self.version == 1:
                (mem / "memory.limit_in_bytes").write_text(limit)
                with contextlib.suppress(OSError):  # no swap accounting on some hosts
                    (mem / "memory.memsw.limit_in_bytes").write_text(limit)
            else:
                (mem / "memory.max").write_text(limit)
                with contextlib.suppress(OSError):
                    (mem / "memory.swap.max").write_text("0")

    def oom_killed(self, killed_by_sigkill: bool) -> bool:
        """Whether the kernel's OOM killer stopped the container.

        cgroup v2 counts ``oom_kill`` hierarchically, so the parent sees the child's. v1
        counts it in the child only, which the runtime has deleted by now; there a SIGKILL
        exit after the parent's peak usage reached our limit tells the same story.
        """
        mem = self._memory_dir()
        try:
            if self.version == 2:
                return _counter((mem / "memory.events").read_text(), "oom_kill") > 0
            if _counter((mem / "memory.oom_control").read_text(), "oom_kill") > 0:
                return True
            peak = int((mem / "memory.max_usage_in_bytes").read_text())
            limit = int((mem / "memory.limit_in_bytes").read_text())
            return killed_by_sigkill and peak >= limit - (1 << 20)
        except (OSError, ValueError):
            return False

    def remove(self) -> None:
        roots = [p for p in ROOT.iterdir() if p.is_dir()] if self.version == 1 else [ROOT]
        for root in roots:
            base = root / self.relative.lstrip("/")
            for d in (base / "c", base):
                with contextlib.suppress(OSError):
                    d.rmdir()


def _enable_controllers(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    try:
        available = (path.parent / "cgroup.controllers").read_text().split()
    except OSError:
        return
    wanted = [c for c in ("cpu", "memory", "pids") if c in available]
    if wanted:
        with contextlib.suppress(OSError):
            (path.parent / "cgroup.subtree_control").write_text(" ".join("+" + c for c in wanted))


def _counter(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0

"""The GPUs this machine has, and which a container may use.

The inventory comes from ``SKIFF_GPUS`` when set (``"A100-80GB:2,L4:1"``: a model and a
count per entry; for machines being simulated or partitioned by hand), else from
``nvidia-smi``. A function's ``gpu="A100"`` / ``"H100:2"`` / ``"any"`` is matched against
model names; the placement hands out whole devices by index.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from ..exception import InvalidError


@dataclass(frozen=True)
class Gpu:
    index: int
    model: str  # e.g. "NVIDIA A100-SXM4-80GB", or "A100-80GB" from SKIFF_GPUS
    memory_mib: int | None = None
    uuid: str | None = None


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Parse ``nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        memory = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
        uuid = parts[3] if len(parts) > 3 else None
        gpus.append(Gpu(index=int(parts[0]), model=parts[1], memory_mib=memory, uuid=uuid))
    return gpus


def parse_config(text: str) -> list[Gpu]:
    """Parse ``SKIFF_GPUS``: ``"A100-80GB:2,L4"``."""
    gpus: list[Gpu] = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        model, _, count = entry.partition(":")
        if not model or (count and not count.isdigit()):
            raise InvalidError(f"SKIFF_GPUS entry {entry!r} must look like 'A100:2' or 'L4'")
        for _ in range(int(count or 1)):
            gpus.append(Gpu(index=len(gpus), model=model))
    return gpus


def detect() -> tuple[list[Gpu], str]:
    """The inventory, and where it came from (for the user)."""
    configured = os.environ.get("SKIFF_GPUS")
    if configured is not None:
        return parse_config(configured), "SKIFF_GPUS"
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], "no nvidia-smi"
    try:
        out = subprocess.run([smi, "--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        return [], f"nvidia-smi failed: {exc}"
    return parse_nvidia_smi(out), "nvidia-smi"


_SPEC = re.compile(r"^(?P<model>any|[a-z][a-z0-9]*(?:-(?P<mem>[0-9]+)gb)?)(?::(?P<count>[1-8]))?$", re.IGNORECASE)


@dataclass(frozen=True)
class GpuRequest:
    model: str  # "any" or a model name such as "A100"
    count: int
    memory_gb: int | None

    def matches(self, gpu: Gpu) -> bool:
        if self.model == "any":
            return True
        base = self.model.split("-")[0].upper()
        name = gpu.model.upper()
        if not re.search(rf"(^|[^A-Z0-9]){re.escape(base)}([^0-9]|$)", name):
            return False
        if self.memory_gb is None:
            return True
        if gpu.memory_mib is not None:
            return gpu.memory_mib >= self.memory_gb * 1000
        return f"{self.memory_gb}GB" in name


def parse_request(spec: str | None) -> GpuRequest | None:
    if not spec:
        return None
    m = _SPEC.match(spec)
    if not m:
        raise InvalidError(f"gpu={spec!r} must look like 'A100', 'A100-80GB', 'H100:2' or 'any'")
    return GpuRequest(model=m.group("model").lower() if m.group("model").lower() == "any" else m.group("model"),
                      count=int(m.group("count") or 1), memory_gb=int(m.group("mem")) if m.group("mem") else None)


def device_nodes(indices: list[int]) -> list[str]:
    """The /dev nodes a container needs for these GPUs (only those that exist)."""
    wanted = [f"/dev/nvidia{i}" for i in indices] + ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"]
    return [d for d in wanted if os.path.exists(d)]


def driver_files() -> list[str]:
    """nvidia-smi and the driver's user-space libraries, to mount read-only where present."""
    found = []
    for name in ("nvidia-smi",):
        path = shutil.which(name)
        if path:
            found.append(path)
    for libdir in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/nvidia/lib64", "/usr/lib/aarch64-linux-gnu"):
        if os.path.isdir(libdir):
            for entry in os.listdir(libdir):
                if entry.startswith(("libnvidia-ml.so", "libcuda.so", "libnvidia-ptxjitcompiler.so")):
                    found.append(os.path.join(libdir, entry))
    return found

"""The GPUs this machine has, and which a container may use.

The inventory comes from ``SKIFF_GPUS`` when set (``"A100-80GB:2,L4:1"``: a model and a
count per entry; for machines being simulated or partitioned by hand), else from
``nvidia-smi``. A function's ``gpu="A100"`` / ``"H100:2"`` / ``"any"`` is matched against
model names; the placement hands out whole devices by index.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ..protocol.gpus import Gpu, parse_config


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

"""GPUs as the sides speak of them: a device in an inventory, and a ``gpu=`` request.

A function's ``gpu="A100"`` / ``"H100:2"`` / ``"A100-80GB"`` / ``"any"`` is parsed
here, by the SDK when the decorator runs and by the server when a function is
registered; a node matches it against its inventory (``skiff.worker.gpus`` finds that)
and hands out whole devices by index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidError


@dataclass(frozen=True)
class Gpu:
    index: int
    model: str  # e.g. "NVIDIA A100-SXM4-80GB", or "A100-80GB" from SKIFF_GPUS
    memory_mib: int | None = None
    uuid: str | None = None


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
    model = m.group("model")
    return GpuRequest(model="any" if model.lower() == "any" else model,
                      count=int(m.group("count") or 1), memory_gb=int(m.group("mem")) if m.group("mem") else None)


def parse_config(text: str) -> list[Gpu]:
    """Parse an inventory given by hand (``SKIFF_GPUS``): ``"A100-80GB:2,L4"``."""
    gpus: list[Gpu] = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        model, _, count = entry.partition(":")
        if not model or (count and not count.isdigit()):
            raise InvalidError(f"SKIFF_GPUS entry {entry!r} must look like 'A100:2' or 'L4'")
        for _ in range(int(count or 1)):
            gpus.append(Gpu(index=len(gpus), model=model))
    return gpus

"""Placement ``local``: containers on this machine, within its slots and GPUs.

Each container holds one slot and its GPUs from before its start to its exit. When no
slot is free, idle containers of other functions are asked to stop (an idle container
is worth less than a waiting input), and whoever waited is woken when a slot or a GPU
comes back.

This is the one server module that reaches the node side (:mod:`skiff.worker`): local
placement runs the node in the server's own process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ...protocol.errors import InvalidError
from ...protocol.gpus import Gpu, GpuRequest
from ...protocol.node import Capabilities, ContainerHandle, ContainerRequest, ExitSink, LogSink
from ...worker import gpus as node_gpus
from ...worker.images import ImageBuilder
from ...worker.runtime import ContainerRuntime, select_runtime
from ...worker.runtime.oci import OciRuntime
from .base import Lease, Reclaimable


def default_capacity() -> int:
    """``SKIFF_MAX_CONTAINERS``, or four containers per CPU core (at least four)."""
    value = os.environ.get("SKIFF_MAX_CONTAINERS")
    if value:
        return max(1, int(value))
    return max(4, 4 * (os.cpu_count() or 1))


class LocalPlacement:
    def __init__(self, runtime: ContainerRuntime | None = None, capacity: int | None = None,
                 gpus: list[Gpu] | None = None, gpu_source: str = "given") -> None:
        self.runtime = runtime
        self.capacity = capacity or default_capacity()
        self.used = 0
        self.gpus = list(gpus or [])
        self.gpu_source = gpu_source
        self._gpu_free = {g.index for g in self.gpus}
        self._waiting: dict[str, Callable[[], None]] = {}
        self._holders: dict[str, Reclaimable] = {}

    @classmethod
    def on_this_machine(cls, home: Path, api_socket: Path, runtime: ContainerRuntime | None = None,
                        ) -> tuple[LocalPlacement, list[str]]:
        """This machine's runtime (``SKIFF_RUNTIME``, else the best it can run) and GPUs,
        with notes for the user about what was chosen or fixed."""
        notes: list[str] = []
        if runtime is None:
            runtime, notes = select_runtime(os.environ.get("SKIFF_RUNTIME"), home, api_socket)
        inventory, source = node_gpus.detect()
        return cls(runtime, gpus=inventory, gpu_source=source), notes

    # -- what this node is -----------------------------------------------------------------

    @property
    def _runtime(self) -> ContainerRuntime:
        if self.runtime is None:
            raise RuntimeError("this LocalPlacement was made without a runtime")
        return self.runtime

    @property
    def name(self) -> str:
        return self._runtime.name

    @property
    def capabilities(self) -> Capabilities:
        return self._runtime.capabilities

    def image_builder(self, images_dir: Path, blob_path: Callable[[str], Path]) -> ImageBuilder | None:
        """The builder for this node's images, where its runtime runs images at all."""
        if not isinstance(self.runtime, OciRuntime):
            return None
        return ImageBuilder(images_dir, self.runtime, blob_path)

    # -- leases ----------------------------------------------------------------------------

    def register(self, who: str, holder: Reclaimable) -> None:
        self._holders[who] = holder

    def forget(self, who: str) -> None:
        self._waiting.pop(who, None)
        self._holders.pop(who, None)

    def check(self, gpu: GpuRequest | None, what: str) -> None:
        """Fail now if this machine could never give ``gpu`` (not merely busy)."""
        if gpu is None:
            return
        matching = [g for g in self.gpus if gpu.matches(g)]
        if len(matching) < gpu.count:
            have = ", ".join(sorted({g.model for g in self.gpus})) or "no GPUs"
            raise InvalidError(
                f"{what}: needs {gpu.count} x {gpu.model} GPU, and this machine has {have} "
                f"({len(self.gpus)} in all). Set SKIFF_GPUS on the server to describe its GPUs if detection is wrong."
            )

    def lease(self, who: str, gpu: GpuRequest | None, wake: Callable[[], None], count: int = 1) -> list[Lease]:
        leases: list[Lease] = []
        while len(leases) < count and self.used < self.capacity:
            chosen: list[Gpu] = []
            if gpu is not None:
                free = [g for g in self.gpus if g.index in self._gpu_free and gpu.matches(g)]
                if len(free) < gpu.count:
                    break  # all matching GPUs are busy: wait for one to come back
                chosen = free[: gpu.count]
                self._gpu_free -= {g.index for g in chosen}
            self.used += 1
            leases.append(Lease(who=who, gpus=chosen))
        if len(leases) == count:
            self._waiting.pop(who, None)
            return leases
        self._waiting[who] = wake
        short = count - len(leases) if self.used >= self.capacity else 0
        for other, holder in list(self._holders.items()):
            if short <= 0:
                break
            if other != who:
                short -= holder.release_idle(short)
        return leases

    def release(self, lease: Lease) -> None:
        self.used = max(0, self.used - 1)
        self._gpu_free |= {g.index for g in lease.gpus}
        lease.gpus = []
        waiting, self._waiting = self._waiting, {}
        for wake in waiting.values():
            wake()

    # -- containers --------------------------------------------------------------------------

    async def start(self, lease: Lease, request: ContainerRequest, on_log: LogSink,
                    on_exit: ExitSink) -> ContainerHandle:
        request.gpus = list(lease.gpus)
        return await self._runtime.start(request, on_log, on_exit)

    async def kill(self, handle: ContainerHandle) -> None:
        await self._runtime.kill(handle)

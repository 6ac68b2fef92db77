"""The interface every placement backend gives the server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ...protocol.gpus import Gpu, GpuRequest
from ...protocol.node import Capabilities, ContainerHandle, ContainerRequest, ExitSink, LogSink
from ..images import ImageBuilder


class Reclaimable(Protocol):
    def release_idle(self, n: int) -> int:
        """Ask up to ``n`` idle containers to stop; return how many were asked."""
        ...


@dataclass(eq=False)
class Lease:
    """What a placement holds for one container, from before its start to its exit."""

    who: str  # the function it is for
    gpus: list[Gpu] = field(default_factory=list)  # whole devices, for this container only
    node: str = "local"


class Placement(Protocol):
    gpus: list[Gpu]  # the inventory, as users are told it

    @property
    def name(self) -> str:
        """The runtime its containers run under, as metering records it."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        ...

    def image_builder(self, images_dir: Path, blob_path: Callable[[str], Path]) -> ImageBuilder | None:
        """The builder of the images its nodes run, or None where they run none."""
        ...

    def check(self, gpu: GpuRequest | None, what: str) -> None:
        """Fail now if no node could ever give this (not merely busy)."""
        ...

    def register(self, who: str, holder: Reclaimable) -> None:
        """``who`` holds containers the placement may ask to give back when short."""
        ...

    def forget(self, who: str) -> None:
        ...

    def lease(self, who: str, gpu: GpuRequest | None, wake: Callable[[], None], count: int = 1) -> list[Lease]:
        """Room for up to ``count`` more containers of ``who``, each with its GPUs. When
        it gives fewer, ``wake`` is called once room may have come back."""
        ...

    def release(self, lease: Lease) -> None:
        """The container on ``lease`` has exited (or never started)."""
        ...

    async def start(self, lease: Lease, request: ContainerRequest, on_log: LogSink,
                    on_exit: ExitSink) -> ContainerHandle:
        ...

    async def kill(self, handle: ContainerHandle) -> None:
        """Stop the container now (SIGKILL to all of it)."""
        ...

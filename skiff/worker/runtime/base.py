"""The interface every runtime implements, and what it declares it can do."""

from __future__ import annotations

from typing import Protocol

from ...protocol.node import (
    BuiltImage,
    Capabilities,
    ContainerHandle,
    ContainerRequest,
    ExitSink,
    LogSink,
)

__all__ = ["BuiltImage", "Capabilities", "ContainerHandle", "ContainerRequest", "ContainerRuntime", "ExitSink", "LogSink"]

class ContainerRuntime(Protocol):
    name: str
    capabilities: Capabilities

    async def start(self, req: ContainerRequest, on_log: LogSink, on_exit: ExitSink) -> ContainerHandle:
        """Start the container; ``on_log`` gets each output line, ``on_exit`` its end."""
        ...

    async def kill(self, handle: ContainerHandle) -> None:
        """Stop the container now (SIGKILL to all of it)."""
        ...

"""The interface every runtime implements, and what it declares it can do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

LogSink = Callable[[str, str, str], None]  # (container_id, stream, line)
ExitSink = Callable[[str, int | None], Awaitable[None]]  # (container_id, exit code)


@dataclass(frozen=True)
class Capabilities:
    isolation: bool  # own filesystem, network and process namespaces
    resource_limits: bool  # cpu= and memory= are enforced
    images: bool  # runs a built Image rather than the host's Python
    gpu: bool


@dataclass
class ContainerRequest:
    container_id: str
    function_id: str
    function_name: str
    code_dir: Path  # the function's code, materialized from the blob store
    server_url: str
    token: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerHandle:
    container_id: str
    pid: int
    native: Any = None  # the runtime's own object (a process, a crun id...)


class ContainerRuntime(Protocol):
    name: str
    capabilities: Capabilities

    async def start(self, req: ContainerRequest, on_log: LogSink, on_exit: ExitSink) -> ContainerHandle:
        """Start the container; ``on_log`` gets each output line, ``on_exit`` its end."""
        ...

    async def kill(self, handle: ContainerHandle) -> None:
        """Stop the container now (SIGKILL to all of it)."""
        ...

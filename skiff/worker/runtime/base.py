"""The interface every runtime implements, and what it declares it can do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

LogSink = Callable[[str, str, str], None]  # (container_id, stream, line)
ExitSink = Callable[[str, int | None, bool], Awaitable[None]]  # (container_id, exit code, OOM-killed)


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
    image: BuiltImage | None = None  # None: the runtime's default (the host's Python for `process`)
    mounts: list[tuple[Path, str]] = field(default_factory=list)  # (host path, container path), read-only
    memory_mib: int | None = None
    cpu: float | None = None
    volumes: list[tuple[Path, str]] = field(default_factory=list)  # (version's tree, container path), writable
    gpus: list[Any] = field(default_factory=list)  # worker.gpus.Gpu, whole devices for this container
    web_dir: Path | None = None  # for a web function: where it creates the socket the gateway connects to


@dataclass
class BuiltImage:
    """An image the builder has finished: its filesystem layers, bottom first."""

    image_id: str
    layers: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/root"


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

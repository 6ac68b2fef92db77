"""What the server asks of a node, and what a node says it can do.

A placement backend hands a node a :class:`ContainerRequest`; the node's runtime
(``skiff.worker.runtime``) starts it and answers with a :class:`ContainerHandle`, then
reports each log line and the exit through the two callbacks. Under ``local``
placement the node is the server's own machine, so the request names host paths (the
code laid out from the blob store, the image's layers, volume trees); a node on
another machine resolves content ids to paths of its own instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .gpus import Gpu

LogSink = Callable[[str, str, str], None]  # (container_id, stream, line)
ExitSink = Callable[[str, int | None, bool], Awaitable[None]]  # (container_id, exit code, OOM-killed)


@dataclass(frozen=True)
class Capabilities:
    """What a node's runtime can honour; the server refuses a function that needs more."""

    isolation: bool  # own filesystem, network and process namespaces
    resource_limits: bool  # cpu= and memory= are enforced
    images: bool  # runs a built Image rather than the host's Python
    gpu: bool


@dataclass
class BuiltImage:
    """An image the builder has finished: its filesystem layers, bottom first."""

    image_id: str
    layers: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/root"


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
    gpus: list[Gpu] = field(default_factory=list)  # whole devices for this container
    web_dir: Path | None = None  # for a web function: where it creates the socket the gateway connects to


@dataclass
class ContainerHandle:
    """A started container, as the server holds it: opaque but for its ids."""

    container_id: str
    pid: int
    native: Any = None  # the runtime's own object (a process, a crun id...)

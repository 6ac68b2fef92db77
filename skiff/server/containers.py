"""The containers of one function, and what its runner and its web balancer share.

A function's :class:`FunctionRunner` (inputs, scaling, container lives) and, for a web
function, its :class:`WebBalancer` (requests) both look at the same containers. This
module holds that shared state and its one owner, :class:`ContainerPool`, so neither of
them reaches into the other: the runner owns a pool, and hands the balancer the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..protocol.gpus import Gpu
from ..protocol.node import ContainerHandle
from ..protocol.wire import FunctionSpec

if TYPE_CHECKING:
    from .calls import Input
    from .placement import Lease


@dataclass(eq=False)
class WebLease:
    """One web request (or websocket session) held by a container."""

    container: ContainerState
    started: float
    websocket: bool = False
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    timer: asyncio.TimerHandle | None = None
    timed_out: bool = False


@dataclass(eq=False)
class WebSlots:
    """A container's side of the web balancer: its socket, and the requests it holds."""

    socket: str = ""
    ready: bool = False
    leases: set[WebLease] = field(default_factory=set)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)

    @property
    def active(self) -> int:
        return len(self.leases)


@dataclass(eq=False)
class ContainerState:
    id: str
    handle: ContainerHandle | None = None
    lease: Lease | None = None  # what the placement gave it: a slot, and its GPUs
    inflight: dict[str, Input] = field(default_factory=dict)
    idle_since: float | None = None
    stopping: bool = False
    stop_reason: str = ""
    waiter: asyncio.Future[list[Input]] | None = None  # its pending long-poll for inputs
    signals: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # input ids to cancel
    secret_env: dict[str, str] = field(default_factory=dict)  # given to it at hello, never on disk
    web: WebSlots = field(default_factory=WebSlots)  # for a web function: its socket and requests

    @property
    def gpus(self) -> list[Gpu]:
        return list(self.lease.gpus) if self.lease is not None else []

    @property
    def busy(self) -> bool:
        return bool(self.inflight) or self.web.active > 0


class ContainerPool:
    """A function's live containers and spec, and the two things anyone sharing them may
    ask of its runner: look again at scaling (``poke``), and stop a container."""

    def __init__(self, spec: FunctionSpec, poke: Callable[[], None],
                 kill: Callable[[ContainerState, str], None]) -> None:
        self.spec = spec
        self.containers: dict[str, ContainerState] = {}
        self.stopped = False
        self._poke = poke
        self._kill = kill

    def poke(self) -> None:
        """Ask the scaling loop to look again (something it scales on changed)."""
        self._poke()

    def kill_container(self, c: ContainerState, reason: str) -> None:
        self._kill(c, reason)

"""Placement ``local``: how many containers this machine may run at once.

Each container holds one slot from start to exit. Runners ask for slots when they want
to scale up and get at most what is free. When none is free, idle containers of other
functions are asked to stop (an idle container is worth less than a waiting input), and
when a slot comes back every runner waiting for one is poked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from ..protocol.errors import InvalidError
from ..protocol.gpus import Gpu, GpuRequest


class Reclaimable(Protocol):
    def release_idle(self, n: int) -> int:
        """Ask up to ``n`` idle containers to stop; return how many were asked."""
        ...


def default_capacity() -> int:
    """``SKIFF_MAX_CONTAINERS``, or four containers per CPU core (at least four)."""
    value = os.environ.get("SKIFF_MAX_CONTAINERS")
    if value:
        return max(1, int(value))
    return max(4, 4 * (os.cpu_count() or 1))


class LocalPlacement:
    def __init__(self, capacity: int | None = None, gpus: list[Gpu] | None = None) -> None:
        self.capacity = capacity or default_capacity()
        self.used = 0
        self.gpus = list(gpus or [])
        self._gpu_free = {g.index for g in self.gpus}
        self._waiting: dict[str, Callable[[], None]] = {}
        self._holders: dict[str, Reclaimable] = {}

    def register(self, who: str, holder: Reclaimable) -> None:
        self._holders[who] = holder

    def reserve(self, wanted: int, who: str, wake: Callable[[], None]) -> int:
        """Take up to ``wanted`` slots; if fewer are free, ``wake`` is called when one frees."""
        granted = max(0, min(wanted, self.capacity - self.used))
        self.used += granted
        if granted < wanted:
            self._waiting[who] = wake
            short = wanted - granted
            for other, holder in self._holders.items():
                if short <= 0:
                    break
                if other != who:
                    short -= holder.release_idle(short)
        else:
            self._waiting.pop(who, None)
        return granted

    def release(self, n: int = 1) -> None:
        self.used = max(0, self.used - n)
        waiting, self._waiting = self._waiting, {}
        for wake in waiting.values():
            wake()

    def check_gpus(self, request: GpuRequest, what: str) -> None:
        """Fail now if this machine could never give ``request`` (not merely busy)."""
        matching = [g for g in self.gpus if request.matches(g)]
        if len(matching) < request.count:
            have = ", ".join(sorted({g.model for g in self.gpus})) or "no GPUs"
            raise InvalidError(
                f"{what}: needs {request.count} x {request.model} GPU, and this machine has {have} "
                f"({len(self.gpus)} in all). Set SKIFF_GPUS on the server to describe its GPUs if detection is wrong."
            )

    def take_gpus(self, request: GpuRequest, who: str, wake: Callable[[], None]) -> list[Gpu] | None:
        """Whole GPUs for one container, or None (and ``wake`` later) if too few are free."""
        free = [g for g in self.gpus if g.index in self._gpu_free and request.matches(g)]
        if len(free) < request.count:
            self._waiting[who] = wake
            return None
        chosen = free[: request.count]
        self._gpu_free -= {g.index for g in chosen}
        return chosen

    def give_back_gpus(self, gpus: list[Gpu]) -> None:
        self._gpu_free |= {g.index for g in gpus}

    def forget(self, who: str) -> None:
        self._waiting.pop(who, None)
        self._holders.pop(who, None)

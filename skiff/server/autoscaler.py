"""The autoscaling policy: a pure function from what is observed to how many containers
a function should have. It decides; :mod:`skiff.server.scheduler` acts.

Keeping it pure means every knob can be tested, and a trace replayed, with no processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Knobs:
    """Modal's autoscaler settings for one function."""

    min_containers: int = 0
    max_containers: int | None = None
    buffer_containers: int = 0
    scaledown_window: float = 60.0
    inputs_per_container: int = 1


@dataclass(frozen=True)
class Observed:
    backlog: int  # inputs queued and not yet taken by a container
    running_inputs: int  # inputs a container is working on
    containers: int  # containers alive or starting


def desired_containers(knobs: Knobs, seen: Observed) -> int:
    """How many containers the function should have right now.

    - enough containers for every queued and running input, ``inputs_per_container`` each;
    - plus ``buffer_containers`` idle spares, but only while the function is active;
    - never fewer than ``min_containers`` nor more than ``max_containers``.
    """
    work = seen.backlog + seen.running_inputs
    wanted = math.ceil(work / max(1, knobs.inputs_per_container))
    if work > 0:
        wanted += knobs.buffer_containers
    wanted = max(wanted, knobs.min_containers)
    if knobs.max_containers is not None:
        wanted = min(wanted, knobs.max_containers)
    return wanted


def containers_to_stop(
    knobs: Knobs, desired: int, idle_since: dict[str, float], alive: int, now: float
) -> list[str]:
    """Which idle containers to stop: those idle past ``scaledown_window``, oldest idle
    first, and never so many that fewer than ``desired`` remain."""
    surplus = alive - desired
    if surplus <= 0:
        return []
    expired = sorted(
        (since, cid) for cid, since in idle_since.items() if now - since >= knobs.scaledown_window
    )
    return [cid for _, cid in expired[:surplus]]


def next_expiry(knobs: Knobs, idle_since: dict[str, float], now: float) -> float | None:
    """Seconds until the next idle container's scale-down window ends, if any."""
    if not idle_since:
        return None
    soonest = min(idle_since.values()) + knobs.scaledown_window
    return max(0.0, soonest - now)

"""Metering: what each function's containers used over a window of time.

A container is metered from its start to its stop, nothing before or after, so a
function scaled to zero costs nothing. The numbers come straight from the ``containers``
table (one row per container's life) and each function's spec (what it reserved: CPU,
memory, GPUs). A container still running is counted up to now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select

from ..protocol.gpus import parse_request as parse_gpu_request
from .store import Store
from .store.models import AppRow, ContainerRow, FunctionRow


@dataclass
class FunctionUsage:
    app: str
    function: str
    containers: int = 0
    seconds: float = 0.0  # container-seconds inside the window
    cpu: float | None = None  # cores reserved per container (None: no reservation)
    memory_mib: int | None = None
    gpu: str | None = None  # the gpu= request, e.g. "A100:2"
    gpu_seconds: float = 0.0  # GPU-seconds: devices held × seconds

    @property
    def cpu_seconds(self) -> float | None:
        return None if self.cpu is None else self.cpu * self.seconds

    @property
    def memory_gib_seconds(self) -> float | None:
        return None if self.memory_mib is None else self.memory_mib / 1024 * self.seconds

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.app, "function": self.function, "containers": self.containers,
                "seconds": round(self.seconds, 3), "cpu": self.cpu, "cpu_seconds": self.cpu_seconds,
                "memory_mib": self.memory_mib, "memory_gib_seconds": self.memory_gib_seconds,
                "gpu": self.gpu, "gpu_seconds": round(self.gpu_seconds, 3)}


def usage(store: Store, since: float, until: float | None = None, app: str | None = None) -> list[FunctionUsage]:
    """Per (app, function): containers that ran in ``[since, until)`` and for how long
    within it. ``app`` keeps one app's name."""
    now = time.time()
    until = now if until is None else until
    query = (
        select(ContainerRow.started_at, ContainerRow.stopped_at, FunctionRow.name, FunctionRow.spec, AppRow.name)
        .join(FunctionRow, ContainerRow.function_id == FunctionRow.id)
        .join(AppRow, ContainerRow.app_id == AppRow.id)
        .where(ContainerRow.started_at < until)
        .where(or_(ContainerRow.stopped_at.is_(None), ContainerRow.stopped_at > since))
    )
    if app is not None:
        query = query.where(AppRow.name == app)
    rows: dict[tuple[str, str], FunctionUsage] = {}
    with store.session() as s:
        for started, stopped, fn_name, spec, app_name in s.execute(query):
            seconds = max(0.0, min(now if stopped is None else stopped, until) - max(started, since))
            key = (app_name, fn_name)
            if key not in rows:
                gpu = spec.get("gpu")
                rows[key] = FunctionUsage(app=app_name, function=fn_name, cpu=spec.get("cpu"),
                                          memory_mib=spec.get("memory"), gpu=gpu if isinstance(gpu, str) else None)
            row = rows[key]
            row.containers += 1
            row.seconds += seconds
            request = parse_gpu_request(spec.get("gpu"))
            if request is not None:
                row.gpu_seconds += request.count * seconds
    return sorted(rows.values(), key=lambda r: (r.app, r.function))


def stop_leftover_containers(store: Store, alive: Path, every: float) -> None:
    """At start: containers the last run left marked running are stopped, metered until
    that run was last seen alive (``alive`` is touched every ``every`` seconds while a
    server runs), not through the downtime that followed a crash."""
    now = time.time()
    try:
        last_seen = min(now, alive.stat().st_mtime + every)
    except FileNotFoundError:
        last_seen = now
    for row in store.running_containers():
        store.container_stopped(row.id, None, "server restarted", at=max(row.started_at, last_seen))


__all__ = ["FunctionUsage", "stop_leftover_containers", "usage"]

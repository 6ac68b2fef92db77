"""Schedules of deployed functions: each fires a call at its next time.

The next run of each schedule is stored, so a server that was down when a run was due
fires it once on coming back (once, not once per missed slot), then carries on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..protocol import payload as wire_payload
from ..protocol.wire import CallKind, FunctionSpec, InputItem
from ..schedule import from_wire
from .store import Store

log = logging.getLogger("skiff.schedules")


CreateCall = Callable[[str, CallKind, list[InputItem], bool], Awaitable[str]]


class Schedules:
    def __init__(self, store: Store, create_call: CreateCall) -> None:
        self.store = store
        self._create_call = create_call
        self._plans: dict[tuple[str, str], tuple[str, dict[str, Any], float]] = {}  # (app, fn) -> (function id, schedule, next)
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="schedules")

    def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def plan(self, app_id: str, functions: list[tuple[str, FunctionSpec]]) -> None:
        """The app's live version's schedules replace its old ones."""
        self.forget(app_id)
        for function_id, spec in functions:
            if spec.schedule:
                state = await self.store.run(self.store.schedule_state, app_id, spec.name)
                now = time.time()
                if state is not None:
                    next_at = state.next_run_at  # due already if the server missed it
                else:
                    next_at = from_wire(spec.schedule).next_after(now)
                    await self.store.run(self.store.save_schedule, app_id, spec.name, None, next_at)
                self._plans[(app_id, spec.name)] = (function_id, spec.schedule, next_at)
        self._changed.set()

    def forget(self, app_id: str) -> None:
        for key in [k for k in self._plans if k[0] == app_id]:
            del self._plans[key]

    def next_runs(self, app_id: str) -> dict[str, float]:
        return {fn: nxt for (app, fn), (_, _, nxt) in self._plans.items() if app == app_id}

    async def _run(self) -> None:
        while True:
            now = time.time()
            due = [(k, v) for k, v in self._plans.items() if v[2] <= now]
            for (app_id, name), (function_id, schedule, _) in due:
                await self._fire(app_id, name, function_id, schedule, now)
            wait = min((v[2] for v in self._plans.values()), default=now + 60) - time.time()
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, min(wait, 60)))
            except TimeoutError:
                pass

    async def _fire(self, app_id: str, name: str, function_id: str, schedule: dict[str, Any], now: float) -> None:
        next_at = from_wire(schedule).next_after(now)
        self._plans[(app_id, name)] = (function_id, schedule, next_at)
        try:
            await self.store.run(self.store.save_schedule, app_id, name, now, next_at)
            args = wire_payload.inline(((), {}))
            await self._create_call(function_id, "schedule", [InputItem(idx=0, args=args)], True)
            log.info("schedule: ran %s of app %s; next at %s", name, app_id, time.ctime(next_at))
        except Exception:
            log.exception("schedule: could not run %s of app %s", name, app_id)

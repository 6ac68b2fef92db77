"""Deployed apps: versions, going live, rolling replacement, rollback, lookups by name,
class variants, and the web routes of every running app.

A deployment is prepared, then made live: ``begin`` hands out the next version number,
functions are registered under it (images built, secrets and volumes checked) without
serving, and ``activate`` starts the new version's runners and drains the old ones.
Requests already queued or running on the old version finish there; new ones go to the
new version the moment it is live.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..protocol import config
from ..protocol import payload as wire_payload
from ..protocol.errors import InvalidError, NotFoundError
from ..protocol.wire import AppInfo, AutoscalerSettings, FunctionSpec, Payload, decode, encode
from .ids import new_id
from .scheduler import FunctionRunner
from .store import Store

log = logging.getLogger("skiff.deployments")

MAX_VERSION = 2**31 - 1  # versions are 32-bit in the database
DRAIN_POLL = 0.2  # seconds between checks that a replaced version has finished its work


def spec_from_row(data: dict[str, Any]) -> FunctionSpec:
    return decode(FunctionSpec, data)


def web_label(spec: FunctionSpec) -> str:
    return (spec.web or {}).get("label") or spec.name.lower().replace("_", "-")


class RunnerHost(Protocol):
    """What deployments need of the control plane: its running functions."""

    store: Store
    runners: dict[str, FunctionRunner]

    async def start_runner(self, function_id: str, app_id: str, spec: FunctionSpec) -> FunctionRunner:
        ...

    async def app_info(self, name_or_id: str) -> list[AppInfo]:
        ...


PlanSchedules = Callable[[str, list[tuple[str, FunctionSpec]]], Awaitable[None]]


class Deployments:
    def __init__(self, cp: RunnerHost, plan_schedules: PlanSchedules) -> None:
        self.cp = cp
        self._plan_schedules = plan_schedules
        self.pending: dict[str, int] = {}  # app id -> the version being prepared
        self.routes: dict[tuple[str, str], str] = {}  # (app name, label) -> function id
        self._app_names: dict[str, str] = {}  # app id -> name, for routed apps
        self._variants: dict[tuple[str, str], str] = {}  # (template id, params hash) -> function id
        self._lock = asyncio.Lock()

    # -- deploying ----------------------------------------------------------------------

    async def begin(self, name: str) -> AppInfo:
        store = self.cp.store
        row = await store.run(store.find_deployed, name)
        if row is None:
            row = await store.run(store.create_deployed, new_id("ap"), name)
        version = max(await store.run(store.max_version, row.id), row.version) + 1
        self.pending[row.id] = version
        return AppInfo(app_id=row.id, name=row.name, state=row.state, created_at=row.created_at,
                       kind="deployed", version=version)

    def check_pending(self, app_id: str, version: int) -> None:
        if not 1 <= version <= MAX_VERSION or self.pending.get(app_id) != version:
            raise InvalidError(f"app {app_id} is not preparing version {version}; start a deployment first")

    async def activate(self, app_id: str, version: int) -> AppInfo:
        """Make ``version`` the live one: start its runners, then drain the old ones."""
        if not 1 <= version <= MAX_VERSION:
            raise NotFoundError(f"app {app_id} has no version {version}: versions count up from 1")
        async with self._lock:
            store = self.cp.store
            app = await store.run(store.get_app, app_id)
            if app is None:
                raise NotFoundError(f"no app with id {app_id!r}")
            rows = await store.run(store.version_functions, app_id, version)
            if not rows:
                raise NotFoundError(f"app {app.name!r} has no version {version}")
            old = [r for r in self.cp.runners.values() if r.app_id == app_id]
            started: list[FunctionRunner] = []
            try:
                for row in rows:
                    spec = spec_from_row(row.spec)
                    if not spec.is_template:
                        started.append(await self.cp.start_runner(row.id, app_id, spec))
            except BaseException:
                for runner in started:
                    await runner.stop("the deployment failed")
                    self.cp.runners.pop(runner.id, None)
                raise
            self.pending.pop(app_id, None)
            await store.run(store.deploy_version, app_id, version)
            self.unroute(app_id)
            for runner in started:
                self.route(app_id, runner.id, runner.spec, app.name)
            for runner in old:
                asyncio.create_task(self._drain(runner, f"replaced by version {version}"))
            await self._plan_schedules(app_id, [(r.id, r.spec) for r in started])
        return (await self.cp.app_info(app_id))[0]

    async def _drain(self, runner: FunctionRunner, reason: str) -> None:
        runner.update_knobs(AutoscalerSettings(min_containers=0, buffer_containers=0))
        deadline = time.monotonic() + runner.spec.timeout + 30
        while (runner.backlog() or runner.running_inputs()) and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_POLL)
        await runner.stop(reason)
        self.cp.runners.pop(runner.id, None)

    async def recover(self) -> None:
        """After a restart: bring every deployed app's live version back."""
        for app in await self.cp.store.run(self.cp.store.live_apps):
            if app.kind == "deployed" and app.version:
                try:
                    await self.activate(app.id, app.version)
                except Exception:
                    log.exception("could not bring deployed app %s (version %d) back", app.name, app.version)

    async def rollback(self, name: str, version: int | None) -> AppInfo:
        """Deploy an earlier version again, as a new version (history only grows)."""
        store = self.cp.store
        app = await store.run(store.find_deployed, name)
        if app is None:
            raise NotFoundError(f"no deployed app named {name!r}")
        versions = [v for v, _, _ in await store.run(store.versions, app.id)]
        target = version if version is not None else max((v for v in versions if v < app.version), default=None)
        if target is None or target not in versions:
            raise NotFoundError(f"app {name!r} has no version {target} to roll back to; it has {versions}")
        info = await self.begin(name)
        for row in await store.run(store.version_functions, app.id, target):
            if "[" not in row.name:  # class variants are made again on demand
                await store.run(store.create_function, new_id("fu"), app.id, row.name, row.spec, info.version)
        return await self.activate(app.id, info.version)

    async def history(self, name: str) -> dict[str, Any]:
        store = self.cp.store
        app = await store.run(store.find_deployed, name)
        if app is None:
            raise NotFoundError(f"no deployed app named {name!r}")
        versions = [{"version": v, "deployed_at": t, "functions": f, "live": v == app.version}
                    for v, t, f in await store.run(store.versions, app.id)]
        runs = [{"function": f, "at": t, "status": st} for f, t, st in await store.run(store.schedule_runs, app.id)]
        return {"app_id": app.id, "name": app.name, "state": app.state, "versions": versions, "schedule_runs": runs}

    # -- finding functions ------------------------------------------------------------------

    async def lookup(self, app_name: str, function_name: str) -> str:
        store = self.cp.store
        app = await store.run(store.find_deployed, app_name)
        if app is None or app.state != "deployed":
            deployed = [a.name for a in await store.run(store.live_apps) if a.kind == "deployed"]
            raise NotFoundError(f"no deployed app named {app_name!r}; deployed apps: {', '.join(sorted(deployed)) or 'none'}")
        rows = [r for r in await store.run(store.version_functions, app.id, app.version)]
        for row in rows:
            if row.name == function_name:
                return row.id
        names = sorted(r.name for r in rows if "[" not in r.name)
        raise NotFoundError(f"app {app_name!r} has no function or class {function_name!r}; it has: {', '.join(names)}")

    async def variant(self, template_id: str, class_params: Payload) -> str:
        """The function serving one parameter set of a deployed class, made on first use."""
        key = (template_id, hashlib.sha256(wire_payload.identity(class_params).encode()).hexdigest())
        if key in self._variants and self._variants[key] in self.cp.runners:
            return self._variants[key]
        row = await self.cp.store.run(self.cp.store.get_function, template_id)
        if row is None or not row.spec.get("is_class"):
            raise NotFoundError(f"function {template_id} is not a deployed class")
        spec = spec_from_row(row.spec)
        spec.is_template, spec.class_params = False, class_params
        spec.name = f"{row.name}[{key[1][:8]}]"  # one parameter set of the class
        function_id = new_id("fu")
        await self.cp.store.run(self.cp.store.create_function, function_id, row.app_id, spec.name, _as_dict(spec), row.version)
        await self.cp.start_runner(function_id, row.app_id, spec)
        self._variants[key] = function_id
        return function_id

    # -- web routes -------------------------------------------------------------------------

    def route(self, app_id: str, function_id: str, spec: FunctionSpec, app_name: str | None = None) -> None:
        if not spec.web:
            return
        name = app_name or self._app_names.get(app_id)
        if name is None:
            return
        self._app_names[app_id] = name
        self.routes[(name, web_label(spec))] = function_id

    def remember_name(self, app_id: str, name: str) -> None:
        self._app_names[app_id] = name

    def unroute(self, app_id: str) -> None:
        """Drop the app's routes (and any whose function no longer runs)."""
        for key, fid in list(self.routes.items()):
            runner = self.cp.runners.get(fid)
            if runner is None or runner.app_id == app_id:
                del self.routes[key]

    def urls(self, app_id: str) -> dict[str, str]:
        name = self._app_names.get(app_id)
        base = config.gateway_url()
        return {label: f"{base}/{app}/{label}" for (app, label), fid in self.routes.items()
                if app == name and fid in self.cp.runners and self.cp.runners[fid].app_id == app_id}


def _as_dict(spec: FunctionSpec) -> dict[str, Any]:
    return encode(spec)

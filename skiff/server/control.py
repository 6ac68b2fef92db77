"""The control plane's core: apps, functions and calls, tied to their runners.

The HTTP layer (:mod:`skiff.server.api`) is a thin translation onto the methods here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..protocol import config
from ..protocol.errors import (
    ConflictError,
    ExecutionError,
    InputCancellation,
    InvalidError,
    NotFoundError,
    NotSupportedError,
)
from ..protocol.gpus import parse_request as parse_gpu_request
from ..protocol.images import default_image
from ..protocol.names import check_name
from ..protocol.node import BuiltImage
from ..protocol.payload import failure_fields
from ..protocol.wire import (
    AppInfo,
    AutoscalerSettings,
    CallKind,
    CallOutputs,
    ContainerExchange,
    ContainerHello,
    ContainerOutput,
    ContainerSignals,
    ContainerWork,
    FunctionSpec,
    FunctionStats,
    InputItem,
    LogBatch,
    LogEntry,
    OutputItem,
    encode,
)
from ..retries import Retries
from .auth import Credentials
from .blobs import BlobStore
from .calls import CallState, Input
from .deployments import Deployments, spec_from_row
from .dicts import DictStore, QueueStore
from .durable import DURABLE_KINDS, DurableCalls, OutputWriter
from .ids import new_id
from .images import ImageService
from .journal import CallJournal
from .logs import LogSink
from .placement import Placement
from .proxy_tokens import ProxyTokens
from .scheduler import FunctionRunner, ServerContext
from .schedules import Schedules
from .secrets import SecretVault
from .store import Store
from .store.models import AppRow
from .usage import stop_leftover_containers
from .volumes import VolumeStore

log = logging.getLogger("skiff.control")

SPAWN_RESULT_TTL = 24 * 3600.0  # how long a finished spawn's result is kept for .get()
RESTART_GRACE = 60.0  # seconds a restarted server waits for an app's client to reconnect
DELIVERED_GRACE = 10.0  # seconds a call whose caller has every output is still held
_CALL_ID = re.compile(r"^fc-[A-Za-z0-9]{20}$")


def check_call_id(call_id: str) -> None:
    """A call id a client chose (so that sending the creation again is harmless)."""
    if not _CALL_ID.match(call_id):
        raise InvalidError(f"call_id {call_id[:40]!r} must be 'fc-' and 20 letters or digits")
ALIVE_EVERY = 10  # seconds between touches of $SKIFF_HOME/run/alive


def validate_spec(spec: FunctionSpec) -> None:
    """The server checks what the decorator checks: a spec may come from any client."""
    name = spec.name
    if spec.module_name is None and spec.pickled is None:
        raise InvalidError(f"function {name!r} needs a module_name or a pickled function")
    if not 0 < spec.timeout <= 24 * 3600:
        raise InvalidError(f"{name}: timeout must be more than 0 and at most 86400 s, got {spec.timeout}")
    if not 0 < spec.scaledown_window <= 24 * 3600:
        raise InvalidError(f"{name}: scaledown_window must be more than 0 s, got {spec.scaledown_window}")
    if spec.min_containers < 0 or spec.buffer_containers < 0:
        raise InvalidError(f"{name}: min_containers and buffer_containers must be at least 0")
    if spec.max_containers is not None and (spec.max_containers < 1 or spec.max_containers < spec.min_containers):
        raise InvalidError(f"{name}: max_containers must be at least 1 and at least min_containers")
    if spec.max_inputs is not None and spec.max_inputs < 1:
        raise InvalidError(f"{name}: max_inputs must be at least 1")
    if spec.max_concurrent_inputs < 1 or not 1 <= spec.target_concurrent_inputs <= spec.max_concurrent_inputs:
        raise InvalidError(f"{name}: concurrent inputs must satisfy 1 <= target_inputs <= max_inputs")
    if spec.max_batch_size is not None and not 1 <= spec.max_batch_size <= 1000:
        raise InvalidError(f"{name}: max_batch_size must be from 1 to 1000")
    if (spec.memory is not None and spec.memory < 16) or (spec.cpu is not None and spec.cpu <= 0):
        raise InvalidError(f"{name}: memory must be at least 16 MiB and cpu above 0")
    Retries.from_wire(spec.retries)


def heartbeat_timeout() -> float:
    """Seconds without a client heartbeat after which an ephemeral app is stopped."""
    return float(os.environ.get("SKIFF_APP_HEARTBEAT_TIMEOUT", "20"))


class ControlPlane:
    def __init__(self, store: Store, home: Path, placement: Placement, server_url: str, token: str) -> None:
        self.store = store
        self.credentials = Credentials(token)
        self.blobs = BlobStore(home / "blobs")
        self.images = ImageService(placement.image_builder(home / "images", self.blobs.path))
        self.placement = placement
        self.logs = LogSink(store)
        self.journal = CallJournal(store)
        mounts = home / "mounts"
        mounts.mkdir(parents=True, exist_ok=True)
        web_dir = _web_socket_dir(home)
        self._alive = home / "run" / "alive"  # touched while this server runs (see _recover)
        self.secrets = SecretVault(store, home / "secret.key")
        self.proxy_tokens = ProxyTokens(store, self.secrets)
        self.dicts = DictStore(store)
        self.queues = QueueStore(store)
        self.volumes = VolumeStore(store, home)
        self.ctx = ServerContext(
            store=store, blobs=self.blobs, logs=self.logs, server_url=server_url, credentials=self.credentials,
            mounts_dir=mounts, web_dir=web_dir, placement=placement, secrets=self.secrets, volumes=self.volumes,
            on_call_done=self._call_done,
        )
        self.runners: dict[str, FunctionRunner] = {}
        self.schedules = Schedules(store, self.create_call)
        self.deployments = Deployments(self, self.schedules.plan)
        self.calls: dict[str, CallState] = {}
        self.durable = DurableCalls(store)
        self.durable_outputs = OutputWriter(self.durable, self._call_done)
        self.ctx.durable_outputs = self.durable_outputs
        self._heartbeats: dict[str, float] = {}  # ephemeral app id -> last client heartbeat
        self._log_waiters: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.store.run(self._recover)
        self._alive.parent.mkdir(parents=True, exist_ok=True)
        self._alive.touch()
        self.logs.start()
        self.journal.start()
        self.durable_outputs.start()
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        await self.deployments.recover()
        await self._restore_ephemeral_apps()
        await self._restore_calls()
        self.schedules.start()

    def _recover(self) -> None:
        """After a restart: no container of the last run still runs (the runtime stopped
        them); their time is metered up to when that run was last seen."""
        stop_leftover_containers(self.store, self._alive, ALIVE_EVERY)
        self.proxy_tokens.migrate_old_tokens()

    async def _restore_ephemeral_apps(self) -> None:
        """An app run from a client (``app.run()``) outlives a server restart: its
        functions serve again, and its client has RESTART_GRACE seconds to be heard from
        (it reconnects by itself) before the app is stopped as usual."""
        for app in await self.store.run(self.store.live_apps):
            if app.kind != "ephemeral":
                continue
            if time.time() - (app.last_heartbeat or 0) > RESTART_GRACE:  # its client is long gone
                await self.store.run(self.store.set_app_state, app.id, "stopped")
                continue
            try:
                for row in await self.store.run(self.store.app_functions, app.id):
                    spec = spec_from_row(row.spec)
                    if not spec.is_template:
                        runner = await self.start_runner(row.id, app.id, spec)
                        self.deployments.route(app.id, row.id, runner.spec, app.name)
                self.deployments.remember_name(app.id, app.name)
                self._heartbeats[app.id] = time.time() + RESTART_GRACE - heartbeat_timeout()
            except Exception:
                log.exception("could not bring app %s back; stopping it", app.name)
                await self.stop_app(app.id, "the server restarted and could not bring the app back")

    async def _restore_calls(self) -> None:
        """Spawned and mapped calls the last run had not finished (or whose results were
        not read): their outputs are held again, and their unfinished inputs queued again."""
        found = await self.store.run(self.durable.load)
        for rec in found:
            call = rec.call
            self.calls[call.id] = call
            runner = self.runners.get(call.function_id)
            if not rec.pending:
                continue
            if call.cancelled:
                for i in rec.pending:
                    self.durable_outputs.add(call, OutputItem(seq=0, idx=i.idx, status="cancelled", **failure_fields(
                        InputCancellation("the call was cancelled"), traceback=False)), final=True)
                continue
            inputs = [Input(call=call, idx=i.idx, args=i.args) for i in rec.pending]
            if runner is None:
                for inp in inputs:
                    self.durable_outputs.add(call, OutputItem(seq=0, idx=inp.idx, status="terminated", **failure_fields(
                        ExecutionError("the server restarted, and the function's app is no longer running"),
                        traceback=False)), final=True)
            else:
                runner.submit(inputs)
        if found:
            log.info("restart: %d durable call(s) back, %d input(s) queued again", len(found),
                     sum(len(r.pending) for r in found))

    async def close(self) -> None:
        self.schedules.stop()
        await self.durable_outputs.close()
        for task in self._tasks:
            task.cancel()
        for runner in list(self.runners.values()):
            await runner.stop("the server stopped", wait=True)
        shutil.rmtree(self.ctx.web_dir, ignore_errors=True)
        await self.logs.close()
        await self.journal.close()

    # -- apps ---------------------------------------------------------------------------

    async def create_app(self, name: str, kind: str) -> AppInfo:
        check_name("app", name)
        if kind == "deployed":
            return await self.deployments.begin(name)
        if kind != "ephemeral":
            raise InvalidError(f"app kind {kind!r} is not one skiff has: 'ephemeral' or 'deployed'")
        app_id = new_id("ap")
        row = await self.store.run(self.store.create_app, app_id, name, kind)
        self._heartbeats[app_id] = time.time()
        self.deployments.remember_name(app_id, name)
        return AppInfo(app_id=row.id, name=row.name, state=row.state, created_at=row.created_at,
                       heartbeat_interval=heartbeat_timeout() / 4)

    async def heartbeat(self, app_id: str) -> None:
        if app_id not in self._heartbeats:
            raise NotFoundError(f"app {app_id} is not running (it was stopped or the server restarted)")
        self._heartbeats[app_id] = time.time()

    async def app_info(self, name_or_id: str) -> list[AppInfo]:
        rows = await self.store.run(self.store.find_apps, name_or_id)
        if not rows:
            raise NotFoundError(f"no app named or with id {name_or_id!r}; `skiff app list` shows the apps")
        return [await self._info(r) for r in rows]

    async def list_apps(self) -> list[AppInfo]:
        return [await self._info(r) for r in await self.store.run(self.store.list_apps)]

    async def _info(self, row: AppRow) -> AppInfo:
        fns = await self.store.run(self.store.app_functions, row.id)
        containers = sum(len(self.runners[f.id].containers) for f in fns if f.id in self.runners)
        current = [f for f in fns if row.kind == "ephemeral" or f.version == row.version]
        return AppInfo(
            app_id=row.id, name=row.name, state=row.state, created_at=row.created_at,
            stopped_at=row.stopped_at, functions=[f.name for f in current if not f.spec.get("class_params")],
            containers=containers, kind=row.kind, version=row.version,
            urls=self.deployments.urls(row.id) if row.state in ("ephemeral", "deployed") else {},
            next_runs=self.schedules.next_runs(row.id),
        )

    async def stop_app(self, app_id: str, reason: str = "the app was stopped") -> None:
        row = await self.store.run(self.store.get_app, app_id)
        if row is None:
            raise NotFoundError(f"no app with id {app_id!r}")
        self._heartbeats.pop(app_id, None)
        if row.state == "stopped":
            return
        await self.store.run(self.store.set_app_state, app_id, "stopping")
        stopping = {r.id for r in self.runners.values() if r.app_id == app_id}
        for call in [c for c in self.calls.values() if c.durable and c.function_id in stopping and not c.done]:
            # Its inputs end with the app; a later start must not run them again, nor keep
            # waiting for the rest of a map whose client is gone.
            call.cancelled = True
            call.mark_inputs_complete()
            await self.store.run(self.durable.cancelled, call.id)
        for runner in [r for r in self.runners.values() if r.app_id == app_id]:
            await runner.stop(reason)
            del self.runners[runner.id]
        self.deployments.unroute(app_id)
        self.schedules.forget(app_id)
        await self.logs.flush()
        await self.store.run(self.store.set_app_state, app_id, "stopped")
        self._wake_logs(app_id)

    # -- functions ----------------------------------------------------------------------

    async def create_function(self, app_id: str, spec: FunctionSpec, version: int = 0) -> str:
        """Register a function: an ephemeral app's starts serving at once; one of a
        deployment being prepared (``version``) waits for the deployment to go live."""
        if version:
            self.deployments.check_pending(app_id, version)
        elif app_id not in self._heartbeats:
            raise NotFoundError(f"app {app_id} is not running; functions can only be added to a running app")
        image = await self.prepare(spec)
        function_id = new_id("fu")
        if version:
            await self.store.run(self.store.create_function, function_id, app_id, spec.name, encode(spec), version)
            return function_id
        runner = FunctionRunner(self.ctx, function_id, app_id, spec, image) if not spec.is_template else None
        try:
            await self.store.run(self.store.create_function, function_id, app_id, spec.name, encode(spec))
        except BaseException:
            if runner is not None:
                await runner.stop("the function could not be recorded")
            raise
        if runner is not None:
            self.runners[function_id] = runner
            self.deployments.route(app_id, function_id, spec)
        return function_id

    async def prepare(self, spec: FunctionSpec) -> BuiltImage | None:
        """Check everything a function needs before any container starts; build its image."""
        validate_spec(spec)
        self.placement.check(parse_gpu_request(spec.gpu), spec.name)
        caps = self.placement.capabilities
        if not caps.resource_limits and (spec.memory or spec.cpu):
            arg = "memory=" if spec.memory else "cpu="
            raise NotSupportedError(f"{spec.name}: {arg} needs the `oci` runtime; this server runs `{self.placement.name}`")
        if not caps.isolation and any(m.remote_path.rstrip("/") != "/root" for m in spec.mounts):
            raise NotSupportedError(f"{spec.name}: local files mounted outside /root need the `oci` runtime")
        if not caps.isolation and spec.volumes:
            raise NotSupportedError(f"{spec.name}: volumes need the `oci` runtime; this server runs `{self.placement.name}`")
        # A missing secret, key or volume fails here, before any container starts.
        for secret in spec.secrets:
            await self.store.run(self.secrets.reveal, secret.name, secret.required_keys)
        for ref in spec.volumes:
            await self.store.run(self.volumes.ensure, ref.name, False)
        if caps.images:
            return await self.images.ready(spec.image or default_image())
        if spec.image:
            self.images.start(spec.image)  # raises the "needs the oci runtime" error
        return None

    async def start_runner(self, function_id: str, app_id: str, spec: FunctionSpec) -> FunctionRunner:
        runner = FunctionRunner(self.ctx, function_id, app_id, spec, await self.prepare(spec))
        self.runners[function_id] = runner
        return runner

    async def function_info(self, function_id: str) -> dict[str, Any]:
        row = await self.store.run(self.store.get_function, function_id)
        if row is None:
            raise NotFoundError(f"no function {function_id}")
        spec = row.spec
        url = None
        if spec.get("web"):
            url = next((f"{config.gateway_url()}/{app}/{label}" for (app, label), fid in self.deployments.routes.items()
                        if fid == function_id), None)
        return {"function_id": row.id, "name": row.name, "is_generator": bool(spec.get("is_generator")),
                "is_class": bool(spec.get("is_class")), "is_template": bool(spec.get("is_template")),
                "web_url": url}

    def runner(self, function_id: str) -> FunctionRunner:
        runner = self.runners.get(function_id)
        if runner is None:
            raise NotFoundError(f"function {function_id} is not running (its app was stopped)")
        return runner

    def update_autoscaler(self, function_id: str, settings: AutoscalerSettings) -> None:
        runner = self.runner(function_id)
        spec = replace(
            runner.spec,
            **{k: v for k, v in asdict(settings).items() if v is not None},
        )
        validate_spec(spec)
        runner.spec = spec
        runner.update_knobs(settings)

    def function_stats(self, function_id: str) -> FunctionStats:
        backlog, runners, running = self.runner(function_id).stats()
        return FunctionStats(backlog=backlog, num_total_runners=runners, num_running_inputs=running)

    # -- calls ---------------------------------------------------------------------------

    async def create_call(self, function_id: str, kind: CallKind, inputs: list[InputItem], complete: bool,
                          owner: str = "", call_id: str | None = None) -> str:
        """Start a call; ``owner`` is the container that made it ("" for the admin's clients)."""
        runner = self.runner(function_id)
        web_type = (runner.spec.web or {}).get("type")
        if web_type not in (None, "fastapi"):
            decorator = {"asgi": "asgi_app", "wsgi": "wsgi_app", "server": "web_server"}.get(web_type, web_type)
            raise InvalidError(f"{runner.spec.name} is a @skiff.{decorator} web app, which answers HTTP requests, "
                               f"not calls: send it a request at its URL instead (`skiff app list` shows it)")
        if kind in DURABLE_KINDS and runner.spec.is_generator:
            raise InvalidError(f"{runner.spec.name} is a generator: call it with .remote_gen(), not .{kind}()")
        if call_id is not None:
            check_call_id(call_id)
            known = self.calls.get(call_id)
            if known is not None:  # the client sent it again, not knowing it had arrived
                if known.function_id != function_id or known.owner != owner:
                    raise ConflictError(f"call {call_id} exists already, made by another caller or for "
                                        "another function")
                if not known.inputs_complete:
                    await self.add_inputs(call_id, inputs, complete)
                return call_id
        call = CallState(id=call_id or new_id("fc"), function_id=function_id, kind=kind, owner=owner,
                         durable=kind in DURABLE_KINDS)
        self.calls[call.id] = call  # before any wait: the same creation sent again finds it
        if call.durable:
            try:
                await self._add_durable_inputs(runner, call, inputs, complete, create=True)
            except BaseException:
                self.calls.pop(call.id, None)
                raise
        else:
            self.journal.created(call.id, function_id, kind)
            self._add_inputs(runner, call, inputs, complete)
        return call.id

    def call_owner(self, call_id: str) -> str | None:
        """Who started a call held now: a container id, "" for the admin; None if unknown."""
        call = self.calls.get(call_id)
        return call.owner if call is not None else None

    def call(self, call_id: str) -> CallState:
        call = self.calls.get(call_id)
        if call is None:
            raise NotFoundError(
                f"no call {call_id} is held by the server: it never existed, its result was "
                "already collected, or the server restarted"
            )
        return call

    async def add_inputs(self, call_id: str, inputs: list[InputItem], complete: bool) -> None:
        call = self.call(call_id)
        if call.durable:
            await self._add_durable_inputs(self.runner(call.function_id), call, inputs, complete)
            return
        if call.inputs_complete:
            raise InvalidError(f"call {call_id} already has all its inputs")
        self._add_inputs(self.runner(call.function_id), call, inputs, complete)

    async def _add_durable_inputs(self, runner: FunctionRunner, call: CallState, inputs: list[InputItem],
                                  complete: bool, create: bool = False) -> None:
        """Write inputs the call does not have yet (a client sends a batch again when it lost
        the answer), then queue them. They are counted before the write, so a request that
        completes the call meanwhile cannot see it done without them."""
        new = [i for i in inputs if i.idx not in call.received]
        if call.inputs_complete or call.cancelled:
            if new:
                raise InvalidError(f"call {call.id} already has all its inputs")
            return
        call.received.update(i.idx for i in new)
        call.num_inputs += len(new)
        try:
            if create:
                await self.store.run(self.durable.create, call, new, complete)
            else:
                await self.store.run(self.durable.add_inputs, call.id, new, complete)
        except BaseException:
            call.received.difference_update(i.idx for i in new)
            call.num_inputs -= len(new)
            raise
        if new:
            runner.submit([Input(call=call, idx=i.idx, args=i.args) for i in new])
        if complete:
            call.mark_inputs_complete()
            if call.done:
                self._call_done(call)

    def _add_inputs(self, runner: FunctionRunner, call: CallState, items: list[InputItem], complete: bool) -> None:
        if items:
            call.num_inputs += len(items)
            runner.submit([Input(call=call, idx=i.idx, args=i.args) for i in items])
        if complete:
            call.mark_inputs_complete()
            if call.done:
                self._call_done(call)

    async def outputs(self, call_id: str, after: int, timeout: float, limit: int = 1000) -> CallOutputs:
        call = self.call(call_id)
        call.acknowledge(after)
        items = await call.wait_outputs(after, min(timeout, 55.0), limit)
        last = items[-1].seq if items else after
        done = call.all_delivered(last)
        if done and call.kind != "spawn" and not call.forgetting:
            # The caller has everything: forget the call, after a moment in which the same
            # read, sent again because its answer was lost, still finds it.
            call.forgetting = True
            asyncio.get_running_loop().call_later(DELIVERED_GRACE, self._forget, call)
        return CallOutputs(outputs=items, done=done)

    async def cancel(self, call_id: str, terminate_containers: bool = False) -> None:
        call = self.call(call_id)
        if call.done:
            return
        call.cancelled = True
        call.mark_inputs_complete()
        if call.durable:  # a restart must not run its inputs again
            await self.store.run(self.durable.cancelled, call.id)
        runner = self.runners.get(call.function_id)
        if runner is not None:
            await runner.cancel_call(call, terminate_containers)

    def _forget(self, call: CallState) -> None:
        if self.calls.get(call.id) is call:
            del self.calls[call.id]
        if call.durable:
            task = asyncio.create_task(self.store.run(self.durable.forget, [call.id]), name="forget-call")
            self._tasks.append(task)
            task.add_done_callback(self._tasks.remove)

    def _call_done(self, call: CallState) -> None:
        status = "cancelled" if call.cancelled else "done"
        self.journal.finished(call.id, status, call.num_inputs, call.num_failures)

    # -- containers ------------------------------------------------------------------------

    def _container_runner(self, function_id: str, container_id: str) -> FunctionRunner:
        runner = self.runners.get(function_id)
        if runner is None or container_id not in runner.containers:
            raise NotFoundError(f"container {container_id} is not known to the server")
        return runner

    def container_hello(self, function_id: str, container_id: str) -> ContainerHello:
        runner = self._container_runner(function_id, container_id)
        env = runner.containers[container_id].secret_env
        return ContainerHello(function_id=function_id, spec=runner.spec, env=env)

    async def container_exchange(self, function_id: str, container_id: str, msg: ContainerExchange) -> ContainerWork:
        runner = self.runners.get(function_id)
        if runner is None:
            return ContainerWork(inputs=[], stop=True)
        return await runner.exchange(container_id, msg)

    def container_web_ready(self, function_id: str, container_id: str) -> None:
        self._container_runner(function_id, container_id).web_ready(container_id)

    def container_init_failed(self, function_id: str, container_id: str, out: ContainerOutput) -> None:
        self._container_runner(function_id, container_id).init_failed(container_id, out)

    async def container_signals(self, function_id: str, container_id: str, timeout: float) -> ContainerSignals:
        runner = self.runners.get(function_id)
        c = runner.container_signals(container_id) if runner else None
        if c is None:
            return ContainerSignals(stop=True)
        try:
            first = await asyncio.wait_for(c.signals.get(), timeout)
        except TimeoutError:
            return ContainerSignals(stop=c.stopping)
        cancel = [first]
        while not c.signals.empty():
            cancel.append(c.signals.get_nowait())
        cancel = [i for i in cancel if i]  # "" marks the container's end
        return ContainerSignals(cancel=cancel, stop=c.stopping or len(cancel) == 0)

    # -- logs ------------------------------------------------------------------------------

    async def read_logs(self, app_id: str, after: int, timeout: float) -> LogBatch:
        row = await self.store.run(self.store.get_app, app_id)
        if row is None:
            raise NotFoundError(f"no app with id {app_id!r}")
        deadline = time.monotonic() + min(timeout, 55.0)
        while True:
            rows = await self.store.run(self.store.read_logs, app_id, after)
            current = await self.store.run(self.store.get_app, app_id)
            state = current.state if current is not None else "stopped"
            remaining = deadline - time.monotonic()
            if rows or state == "stopped" or remaining <= 0:
                entries = [
                    LogEntry(seq=r.seq, ts=r.ts, function=r.function, container_id=r.container_id,
                             stream=r.stream, text=r.text)
                    for r in rows
                ]
                return LogBatch(entries=entries, app_state=state)
            event = self._log_waiters.setdefault(app_id, asyncio.Event())
            flushed = asyncio.ensure_future(self.logs.wait_flush(remaining))
            stopped = asyncio.ensure_future(event.wait())
            await asyncio.wait([flushed, stopped], return_when=asyncio.FIRST_COMPLETED)
            flushed.cancel()
            stopped.cancel()

    def _wake_logs(self, app_id: str) -> None:
        event = self._log_waiters.pop(app_id, None)
        if event:
            event.set()

    # -- housekeeping ----------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Once a second: stop apps whose client vanished, persist heartbeats, and drop
        spawned results nobody collected."""
        beats = 0
        while True:
            await asyncio.sleep(1.0)
            beats += 1
            try:
                now = time.time()
                if beats % ALIVE_EVERY == 0:
                    self._alive.touch()
                limit = heartbeat_timeout()
                for app_id, last in list(self._heartbeats.items()):
                    if now - last > limit:
                        log.info("app %s: no client heartbeat for %.0f s, stopping it", app_id, now - last)
                        await self.stop_app(app_id, "the app's client disconnected")
                if self._heartbeats:
                    await self.store.run(self.store.touch_apps, dict(self._heartbeats))
                expired = [call_id for call_id, call in self.calls.items()
                           if call.finished_at and now - call.finished_at > SPAWN_RESULT_TTL]
                for call_id in expired:
                    self.calls.pop(call_id, None)
                if expired:
                    await self.store.run(self.durable.forget, expired)
            except Exception:
                log.exception("housekeeping failed")


def _web_socket_dir(home: Path) -> Path:
    """Where web containers' sockets go: under the server's home, unless that path is too
    long for a Unix socket address (108 bytes, with the container's id and socket name),
    in which case a fresh private directory in /tmp."""
    path = home.resolve() / "run" / "web"
    if len(str(path)) > 60:
        return Path(tempfile.mkdtemp(prefix="skiff-web-"))
    shutil.rmtree(path, ignore_errors=True)  # sockets of a previous run's containers
    path.mkdir(parents=True, mode=0o700)
    return path

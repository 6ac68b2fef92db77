"""One :class:`FunctionRunner` per live function: its input queue, its containers, the
scaling loop that sizes them, and what happens to each input (done, retried, failed).

The runner acts; :mod:`.autoscaler` decides. Containers are started, stopped and given
back only through the placement seam (:mod:`.placement`); the containers themselves
are a :class:`~.containers.ContainerPool` the runner shares with its web balancer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..protocol import payload as wire_payload
from ..protocol.errors import ExecutionError, FunctionTimeoutError
from ..protocol.gpus import parse_request as parse_gpu_request
from ..protocol.node import BuiltImage, ContainerRequest
from ..protocol.webproto import SOCKET_NAME
from ..protocol.wire import (
    AutoscalerSettings,
    ContainerExchange,
    ContainerOutput,
    ContainerWork,
    FunctionSpec,
    OutputItem,
)
from ..retries import Retries
from . import autoscaler
from .auth import Credentials
from .blobs import BlobStore
from .calls import CallState, Input, InputQueue
from .containers import ContainerPool, ContainerState
from .durable import OutputWriter
from .ids import new_id
from .logs import LogSink
from .placement import Lease, Placement
from .secrets import SecretVault
from .store import Store
from .volumes import VolumeStore
from .webproxy import WebBalancer

log = logging.getLogger("skiff.scheduler")

STOP_GRACE = 10.0  # seconds a container asked to stop gets before it is killed
TIMED_OUT = "input timed out"  # a container's stop reason when one of its inputs ran past its timeout


@dataclass
class ServerContext:
    """What every runner shares: set up once by the control plane."""

    store: Store
    blobs: BlobStore
    logs: LogSink
    server_url: str
    credentials: Credentials
    mounts_dir: Path
    web_dir: Path  # web functions' socket directories, one per container
    placement: Placement
    secrets: SecretVault
    volumes: VolumeStore
    on_call_done: Callable[[CallState], None]
    durable_outputs: OutputWriter | None = None  # where outputs of durable calls go first


class FunctionRunner:
    def __init__(self, ctx: ServerContext, function_id: str, app_id: str, spec: FunctionSpec,
                 image: BuiltImage | None = None) -> None:
        self.ctx = ctx
        self.image = image
        self.id = function_id
        self.app_id = app_id
        self.pool = ContainerPool(spec, self.poke, self.kill_container)
        self.gpu_request = parse_gpu_request(spec.gpu)
        self.retries = Retries.from_wire(spec.retries)
        self.knobs = autoscaler.Knobs(
            min_containers=spec.min_containers,
            max_containers=spec.max_containers,
            buffer_containers=spec.buffer_containers,
            scaledown_window=spec.scaledown_window,
            inputs_per_container=spec.target_concurrent_inputs,
        )
        self.queue = InputQueue()
        self.web = WebBalancer(self.pool) if spec.web else None  # web requests skip the queue
        self._poke = asyncio.Event()
        self._poke.set()  # reconcile once at the start: min_containers apply before any call
        self._loop_task = asyncio.create_task(self._scale_loop(), name=f"scale-{spec.name}")
        ctx.placement.register(function_id, self)

    @property
    def spec(self) -> FunctionSpec:
        return self.pool.spec

    @spec.setter
    def spec(self, spec: FunctionSpec) -> None:
        self.pool.spec = spec

    @property
    def _sequential(self) -> bool:
        """Its containers run one input at a time, in the order they were handed them."""
        return self.spec.max_concurrent_inputs == 1 and not self.spec.max_batch_size

    @property
    def containers(self) -> dict[str, ContainerState]:
        return self.pool.containers

    @property
    def stopped(self) -> bool:
        return self.pool.stopped

    # -- inputs in --------------------------------------------------------------------

    def submit(self, inputs: list[Input]) -> None:
        self.queue.put(inputs)
        self._poke.set()

    def poke(self) -> None:
        """Ask the scaling loop to look again (something it scales on changed)."""
        self._poke.set()

    def backlog(self) -> int:
        return len(self.queue) + (len(self.web.waiting) if self.web else 0)

    def running_inputs(self) -> int:
        return sum(len(c.inflight) + c.web.active for c in self.containers.values())

    # -- the container side -------------------------------------------------------------

    async def exchange(self, container_id: str, msg: ContainerExchange) -> ContainerWork:
        c = self.containers.get(container_id)
        if c is None:
            return ContainerWork(inputs=[], stop=True)
        for out in msg.outputs:
            self._container_output(c, out)
        if c.stopping or self.stopped or msg.want <= 0:
            return ContainerWork(inputs=[], stop=c.stopping or self.stopped)
        # A fair share of the backlog, so one container does not hoard a map's inputs.
        share = math.ceil(len(self.queue) / max(1, len(self.containers)))
        want = max(1, min(msg.want, share))
        if not c.busy and c.idle_since is None:
            c.idle_since = time.time()
            self._poke.set()
        inputs = self._one_if_solo(await self._wait_inputs(c, want, msg.timeout))
        if not inputs:
            return ContainerWork(inputs=[], stop=c.stopping or self.stopped)
        now = time.time()
        c.idle_since = None
        loop = asyncio.get_running_loop()
        # A sequential container runs a batch one after another, so the k-th input's
        # deadline allows for the k before it; concurrent and batched ones run them at once.
        sequential = self._sequential
        for k, inp in enumerate(inputs):
            inp.container_id = c.id
            inp.started_at = now
            c.inflight[inp.id] = inp
            inp.timer = loop.call_later(self.spec.timeout * ((k + 1) if sequential else 1), self._timed_out, inp)
        return ContainerWork(inputs=[i.to_wire() for i in inputs])

    def _one_if_solo(self, inputs: list[Input]) -> list[Input]:
        """Inputs to hand out together: one marked solo goes alone, and ends a batch."""
        for k, inp in enumerate(inputs):
            if inp.solo:
                keep = inputs[:k] if k else inputs[:1]
                self.queue.put(inputs[len(keep):], front=True)
                return keep
        return inputs

    async def _wait_inputs(self, c: ContainerState, want: int, timeout: float) -> list[Input]:
        get = asyncio.ensure_future(self.queue.get(want, timeout))
        c.waiter = get
        try:
            return await get
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the HTTP request itself went away
            return []  # _ask_to_stop() ended the wait: answer "no inputs, please stop"
        finally:
            c.waiter = None

    def _container_output(self, c: ContainerState, out: ContainerOutput) -> None:
        inp = c.inflight.get(out.input_id)
        if inp is None:
            return  # already timed out, cancelled or re-queued: a late answer is dropped
        item = OutputItem(
            seq=0, idx=inp.idx, status=out.status, result=out.result, exc_type=out.exc_type,
            exc_message=out.exc_message, traceback=out.traceback, gen_index=out.gen_index,
            gen_done=out.gen_done,
        )
        if out.gen_index is not None and not out.gen_done:
            inp.gen_items += 1
            inp.call.add_output(item, final=False)
            return
        del c.inflight[inp.id]
        if inp.timer:
            inp.timer.cancel()
        if not c.busy:
            c.idle_since = time.time()
        self._poke.set()
        if out.status == "failure" and inp.gen_items == 0 and self._retry(inp, out.exc_message or ""):
            return
        self._finish(inp, item)

    def container_signals(self, container_id: str) -> ContainerState | None:
        return self.containers.get(container_id)

    def web_ready(self, container_id: str) -> None:
        """The container listens on its socket: requests may go to it."""
        c = self.containers.get(container_id)
        if c is not None and self.web is not None:
            self.web.ready(c)

    def init_failed(self, container_id: str, out: ContainerOutput) -> None:
        """The container could not import the function: every queued input fails with
        the import error rather than crash-looping containers."""
        c = self.containers.get(container_id)
        if c is not None:
            c.stopping = True
            c.stop_reason = "init failure"
        for inp in self.queue.drain():
            self._finish(
                inp,
                OutputItem(seq=0, idx=inp.idx, status="init_failure", result=out.result,
                           exc_type=out.exc_type, exc_message=out.exc_message, traceback=out.traceback),
            )
        if self.web is not None:
            self.web.fail_waiting(f"{self.spec.name}: the web function could not start: "
                                  f"{out.exc_type}: {out.exc_message}", status=500)

    # -- how inputs end -----------------------------------------------------------------

    def _finish(self, inp: Input, item: OutputItem) -> None:
        call = inp.call
        if call.durable and self.ctx.durable_outputs is not None:
            self.ctx.durable_outputs.add(call, item, final=True)  # written down, then handed out
            return
        call.add_output(item, final=True)
        if call.done:
            self.ctx.on_call_done(call)

    def _fail(self, inp: Input, status: str, exc: BaseException) -> None:
        self._finish(inp, OutputItem(seq=0, idx=inp.idx, status=status, **wire_payload.failure_fields(exc, traceback=False)))

    def _retry(self, inp: Input, reason: str) -> bool:
        """Re-queue a failed input after its backoff if the policy allows another try."""
        if self.retries is None or inp.attempt >= self.retries.max_retries or inp.call.cancelled:
            return False
        inp.attempt += 1
        inp.container_id = None
        inp.timer = None
        delay = self.retries.delay_before(inp.attempt)
        log.info("retrying input %s of %s in %.1fs (try %d): %s", inp.id, self.spec.name, delay, inp.attempt + 1, reason)
        asyncio.get_running_loop().call_later(delay, self._requeue, inp)
        return True

    def _requeue(self, inp: Input) -> None:
        if self.stopped:
            self._fail(inp, "terminated", ExecutionError(f"{self.spec.name}: the app stopped before the input ran"))
        elif not inp.call.cancelled:
            self.submit([inp])

    def _timed_out(self, inp: Input) -> None:
        c = self.containers.get(inp.container_id or "")
        if c is None or c.inflight.pop(inp.id, None) is None:
            return
        message = f"{self.spec.name}: timed out after {self.spec.timeout:g} s (timeout={self.spec.timeout:g})"
        self.kill_container(c, TIMED_OUT)
        if not self._retry(inp, message):
            self._fail(inp, "timeout", FunctionTimeoutError(message))

    async def cancel_call(self, call: CallState, terminate_containers: bool = False) -> None:
        """Pending inputs are dropped; running ones are interrupted in their container, or
        with ``terminate_containers`` the containers running them are stopped."""
        for inp in self._drop_pending(call):
            self._fail(inp, "cancelled", _cancelled())
        for c in list(self.containers.values()):
            running = [inp for inp in c.inflight.values() if inp.call is call]
            if running and terminate_containers:
                for inp in running:
                    del c.inflight[inp.id]
                    if inp.timer:
                        inp.timer.cancel()
                    self._fail(inp, "cancelled", _cancelled())
                c.stopping, c.stop_reason = True, "its call was cancelled"
                await self._kill(c)
            for inp in running if not terminate_containers else []:
                c.signals.put_nowait(inp.id)

    def _drop_pending(self, call: CallState) -> list[Input]:
        kept: list[Input] = []
        dropped: list[Input] = []
        for inp in self.queue.drain():
            (dropped if inp.call is call else kept).append(inp)
        self.queue.put(kept)
        return dropped

    # -- container lifecycle ------------------------------------------------------------

    async def _start_container(self, lease: Lease) -> None:
        cid = new_id("ta")
        c = ContainerState(id=cid, lease=lease)
        self.containers[cid] = c
        try:
            web_dir = None
            if self.web is not None:
                web_dir = self.ctx.web_dir / cid
                web_dir.mkdir(parents=True, exist_ok=True)
                c.web.socket = str(web_dir / SOCKET_NAME)
            code_dir, mounts = await asyncio.to_thread(self._lay_out_files)
            env = dict(self.spec.env)
            for secret in self.spec.secrets:
                c.secret_env.update(await self.ctx.store.run(self.ctx.secrets.reveal, secret.name, secret.required_keys))
            volumes: list[tuple[Path, str]] = []
            mounted: list[dict[str, Any]] = []
            for ref in self.spec.volumes:
                version = await self.ctx.store.run(self.ctx.volumes.ensure, ref.name, False)
                volumes.append((await self.ctx.store.run(self.ctx.volumes.tree, ref.name, version), ref.mount_path))
                mounted.append({"name": ref.name, "path": ref.mount_path, "version": version, "since": time.time()})
            if mounted:
                env["SKIFF_VOLUMES"] = json.dumps(mounted)
            req = ContainerRequest(
                container_id=cid, function_id=self.id, function_name=self.spec.name,
                code_dir=code_dir, server_url=self.ctx.server_url,
                token=self.ctx.credentials.mint(self.id, cid, self.app_id, self.spec),
                env=env, image=self.image, mounts=mounts,
                memory_mib=self.spec.memory, cpu=self.spec.cpu, volumes=volumes, web_dir=web_dir,
            )
            c.handle = await self.ctx.placement.start(lease, req, self._on_log, self._on_exit)
            if self.stopped:  # stop() ran while it started, and could not signal it then
                c.stopping, c.stop_reason = True, "its function stopped while it started"
                await self._kill(c)
            await self.ctx.store.run(self.ctx.store.container_started, cid, self.app_id, self.id, self.ctx.placement.name)
        except Exception as exc:
            log.exception("could not start a container for %s", self.spec.name)
            self.containers.pop(cid, None)
            self.ctx.credentials.revoke(cid)
            self.ctx.placement.release(lease)
            self.ctx.logs.write(self.app_id, cid, self.spec.name, "stderr", f"skiff: could not start container: {exc}")
            for inp in self.queue.drain():
                self._fail(inp, "init_failure", ExecutionError(f"{self.spec.name}: could not start a container: {exc}"))
            if self.web is not None:
                self.web.fail_waiting(f"{self.spec.name}: could not start a container: {exc}")
                shutil.rmtree(self.ctx.web_dir / cid, ignore_errors=True)

    def _lay_out_files(self) -> tuple[Path, list[tuple[Path, str]]]:
        """The code directory (the function's module plus anything mounted at /root) and
        the other local mounts, laid out from the blob store."""
        code = dict(self.spec.mount)
        others = []
        for m in self.spec.mounts:
            if m.remote_path.rstrip("/") == "/root":
                code.update(m.manifest)
            else:
                others.append((self.ctx.blobs.materialize(m.manifest, self.ctx.mounts_dir), m.remote_path))
        return self.ctx.blobs.materialize(code, self.ctx.mounts_dir), others

    def _on_log(self, container_id: str, stream: str, line: str) -> None:
        self.ctx.logs.write(self.app_id, container_id, self.spec.name, stream, line)

    async def _on_exit(self, container_id: str, code: int | None, oom: bool = False) -> None:
        c = self.containers.pop(container_id, None)
        if c is None:
            return
        self.ctx.credentials.revoke(container_id)
        if c.lease is not None:
            self.ctx.placement.release(c.lease)
        c.signals.put_nowait("")  # ends its signals long-poll, if one is waiting
        if self.web is not None:
            self.web.gone(c)
            shutil.rmtree(self.ctx.web_dir / container_id, ignore_errors=True)
        reason = c.stop_reason or ("exited" if code == 0 else f"exited with code {code}")
        if oom:
            reason = f"exceeded its memory limit of {self.spec.memory} MiB"
        held = list(c.inflight.values())
        c.inflight.clear()
        # Stopped for an input's timeout or a cancelled call, the container's death is that
        # input's doing (it was taken out already); the others it held pay nothing.
        culprit_known = c.stop_reason in (TIMED_OUT, "its call was cancelled")
        if (len(held) > 1 or culprit_known) and held and self._sequential and not self.stopped:
            # A sequential container takes quick inputs a batch at a time and runs them in
            # order, handing their outputs in together; when it dies, which of the ones it
            # held was running (those before it ran, those after never started) is
            # unknown. None of them spends a retry: each goes back to the queue, to be
            # handed out alone, so one that kills its container again is known and pays.
            for inp in held:
                if inp.timer:
                    inp.timer.cancel()
                inp.container_id, inp.timer, inp.started_at, inp.solo = None, None, 0.0, True
            self.queue.put(held, front=True)
            held = []
        for inp in held:
            if inp.timer:
                inp.timer.cancel()
            if oom:
                message = f"{self.spec.name}: container exceeded its memory limit of {self.spec.memory} MiB"
            else:
                message = f"{self.spec.name}: the container running this input died ({_describe_exit(code)})"
            if self.stopped:
                self._fail(inp, "terminated", ExecutionError(f"{self.spec.name}: the app stopped while the input ran"))
            elif not self._retry(inp, message):
                self._fail(inp, "terminated", ExecutionError(message))
        await self.ctx.store.run(self.ctx.store.container_stopped, container_id, code, reason)
        self._poke.set()

    def kill_container(self, c: ContainerState, reason: str) -> None:
        c.stopping, c.stop_reason = True, reason
        asyncio.ensure_future(self._kill(c))

    async def _kill(self, c: ContainerState) -> None:
        if c.handle is not None and c.id in self.containers:  # never signal one that already exited
            await self.ctx.placement.kill(c.handle)

    def _ask_to_stop(self, c: ContainerState, reason: str) -> None:
        c.stopping = True
        c.stop_reason = reason
        if c.waiter is not None and not c.waiter.done():
            c.waiter.cancel()
        asyncio.get_running_loop().call_later(STOP_GRACE, lambda: asyncio.ensure_future(self._kill(c)))

    # -- scaling -------------------------------------------------------------------------

    async def _scale_loop(self) -> None:
        while not self.stopped:
            now = time.time()
            alive = [c for c in self.containers.values() if not c.stopping]
            seen = autoscaler.Observed(backlog=self.backlog(), running_inputs=self.running_inputs(), containers=len(alive))
            wait = None
            if len(alive) > autoscaler.desired_containers(self.knobs, seen):
                # Only containers that may be stopped have a window worth waking up for: one
                # kept by min_containers would otherwise wake this loop again and again.
                idle = {c.id: c.idle_since for c in alive if c.idle_since is not None and not c.busy}
                wait = autoscaler.next_expiry(self.knobs, idle, now)
            try:
                await asyncio.wait_for(self._poke.wait(), wait)
            except TimeoutError:
                pass
            self._poke.clear()
            if self.stopped:
                return
            try:
                await self._reconcile()
            except Exception:
                log.exception("scaling %s failed", self.spec.name)

    async def _reconcile(self) -> None:
        alive = [c for c in self.containers.values() if not c.stopping]
        seen = autoscaler.Observed(backlog=self.backlog(), running_inputs=self.running_inputs(), containers=len(alive))
        desired = autoscaler.desired_containers(self.knobs, seen)
        if desired > len(alive):
            leases = self.ctx.placement.lease(self.id, self.gpu_request, self._poke.set, desired - len(alive))
            await asyncio.gather(*(self._start_container(lease) for lease in leases))
        elif desired < len(alive):
            idle = {c.id: c.idle_since for c in alive if c.idle_since is not None and not c.busy}
            for cid in autoscaler.containers_to_stop(self.knobs, desired, idle, len(alive), time.time()):
                self._ask_to_stop(self.containers[cid], "scaled down")

    def update_knobs(self, settings: AutoscalerSettings) -> None:
        """``Function.update_autoscaler``: new knobs, acted on at once."""
        knobs = self.knobs
        self.knobs = replace(
            knobs,
            min_containers=knobs.min_containers if settings.min_containers is None else settings.min_containers,
            max_containers=knobs.max_containers if settings.max_containers is None else settings.max_containers,
            buffer_containers=knobs.buffer_containers if settings.buffer_containers is None else settings.buffer_containers,
            scaledown_window=knobs.scaledown_window if settings.scaledown_window is None else settings.scaledown_window,
        )
        self._poke.set()

    def stats(self) -> tuple[int, int, int]:
        alive = sum(1 for c in self.containers.values() if not c.stopping)
        return self.backlog(), alive, self.running_inputs()

    def release_idle(self, n: int) -> int:
        """Stop up to ``n`` idle containers so another function can have their slots,
        keeping ``min_containers``."""
        alive = [c for c in self.containers.values() if not c.stopping]
        idle = sorted((c for c in alive if c.idle_since is not None and not c.busy), key=lambda c: c.idle_since or 0.0)
        spare = min(n, len(idle), len(alive) - self.knobs.min_containers)
        for c in idle[:max(0, spare)]:
            self._ask_to_stop(c, "its slot was needed by another function")
        return max(0, spare)

    async def stop(self, reason: str, wait: bool = False) -> None:
        """Stop everything: pending inputs fail, busy containers are killed and idle ones
        asked to stop (so @exit hooks run). With ``wait`` (the server is shutting down),
        every container is killed and cleaned up before this returns."""
        self.pool.stopped = True
        self.ctx.placement.forget(self.id)
        self._poke.set()
        for inp in self.queue.drain():
            self._fail(inp, "terminated", ExecutionError(f"{self.spec.name}: {reason} before the input ran"))
        self.queue.wake_all()
        if self.web is not None:
            self.web.fail_waiting(f"{self.spec.name}: {reason}")
        for c in list(self.containers.values()):
            if c.busy or c.handle is None or wait:
                c.stopping, c.stop_reason = True, reason
                await self._kill(c)
            else:
                self._ask_to_stop(c, reason)  # idle: it exits by itself, running @exit hooks
        self._loop_task.cancel()
        deadline = time.monotonic() + 10
        while wait and self.containers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # their exit handlers unmount and clean up


def _cancelled() -> BaseException:
    from ..protocol.errors import InputCancellation

    return InputCancellation("the call was cancelled")


def _describe_exit(code: int | None) -> str:
    """A process's exit status in words; OCI runtimes report a signal as 128 + its number."""
    if code is None:
        return "no exit code"
    signum = -code if code < 0 else code - 128 if code > 128 else 0
    if signum:
        import signal

        try:
            return f"killed by {signal.Signals(signum).name}"
        except ValueError:
            return f"killed by signal {signum}"
    return f"exit code {code}"

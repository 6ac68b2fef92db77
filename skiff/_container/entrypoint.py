"""The container's main loop: load the function (or instantiate the class and run its
``@enter`` hooks), then exchange outputs for inputs until the server says stop.

Three ways to serve, chosen by the function's decorators:
- one input at a time (the default): each round trip hands in the last output and asks
  for the next input;
- ``@skiff.concurrent``: up to ``max_inputs`` at once, in threads or as asyncio tasks,
  with outputs sent back by their own thread as each finishes;
- ``@skiff.batched``: inputs gathered into lists of up to ``max_batch_size``, waiting at
  most ``wait_ms`` for a batch to fill.

A web function also serves the gateway's requests on a socket of its own (:mod:`.web`).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..protocol import payload as wire_payload
from ..protocol import serialization as ser
from ..protocol.errors import InputCancellation
from ..protocol.lifecycle import instantiate, lifecycle_methods
from ..protocol.wire import ContainerInput, ContainerOutput, FunctionSpec, Payload
from .client import ContainerClient, ServerGone

POLL = 25.0  # seconds one long-poll for inputs may wait
# A sequential container may take this many inputs per round trip when the backlog is deep
# (the server grants at most a fair share of it), so short inputs cost one request per batch.
PREFETCH = 16
SLOW_INPUT = 0.05  # seconds; slower inputs are not prefetched, and their outputs go back at once


class _Cancellation:
    """Lets the signals thread interrupt the input running on the main thread."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.cancelled: set[str] = set()
        signal.signal(signal.SIGUSR1, self._handler)

    def _handler(self, _signum: int, _frame: Any) -> None:
        if self.current is not None and self.current in self.cancelled:
            raise InputCancellation("the call was cancelled")

    def cancel(self, input_ids: list[str]) -> None:
        self.cancelled.update(input_ids)
        if self.current in self.cancelled:
            main = threading.main_thread().ident
            if main is not None:  # always: the main thread is running, so it has an ident
                signal.pthread_kill(main, signal.SIGUSR1)


class Container:
    def __init__(self) -> None:
        env = os.environ
        self.function_id = env["SKIFF_FUNCTION_ID"]
        self.container_id = env["SKIFF_CONTAINER_ID"]
        self._url, self._token = env["SKIFF_SERVER_URL"], env["SKIFF_TOKEN"]
        self.client = self._new_client()
        self.cancellation = _Cancellation()
        self.spec = FunctionSpec(name="")
        self.resolve: Callable[[str | None], Callable[..., Any]] = lambda _m: _missing()
        self.exit_hooks: list[Callable[[], Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.web: Any = None  # a WebHandler, for web functions

    def _new_client(self) -> ContainerClient:
        return ContainerClient(self._url, self._token, self.function_id, self.container_id)

    # -- payloads ------------------------------------------------------------------------

    def _load(self, payload: Payload) -> Any:
        data = wire_payload.inline_bytes(payload)
        if data is None:
            data = self.client.get_blob(payload.blob_id or "")
        return ser.deserialize(data)

    def _dump(self, value: Any, client: ContainerClient | None = None) -> Payload:
        payload, upload = wire_payload.pack(ser.serialize(value))
        if upload is not None:
            (client or self.client).put_blob(payload.blob_id or "", upload)
        return payload

    def _success(self, input_id: str, value: Any, client: ContainerClient | None = None) -> ContainerOutput:
        return ContainerOutput(input_id=input_id, status="success", result=self._dump(value, client))

    def _failure(self, input_id: str, exc: BaseException, status: str = "failure") -> ContainerOutput:
        return ContainerOutput(input_id=input_id, status=status, **wire_payload.failure_fields(exc))

    def _args(self, inp: ContainerInput) -> tuple[tuple[Any, ...], dict[str, Any], str | None]:
        loaded = self._load(inp.args)
        args, kwargs = loaded[0], loaded[1]
        return tuple(args), dict(kwargs), (loaded[2] if len(loaded) > 2 else None)

    # -- start-up -----------------------------------------------------------------------

    def load(self) -> None:
        spec = self.spec
        if spec.pickled is not None:
            obj = self._load(spec.pickled)
        else:
            obj = importlib.import_module(spec.module_name or "")
            for part in (spec.qualname or "").split("."):
                obj = getattr(obj, part)
        if spec.is_class:
            user_cls = obj.get_user_cls() if hasattr(obj, "get_user_cls") else obj
            params = self._load(spec.class_params) if spec.class_params is not None else {}
            instance = instantiate(user_cls, params)
            for hook in lifecycle_methods(user_cls, "enter"):
                self._call(getattr(instance, hook), (), {})
            self.exit_hooks = [getattr(instance, h) for h in lifecycle_methods(user_cls, "exit")]
            # A class's inputs always name their method (resolve takes None only for functions).
            self.resolve = lambda method: getattr(instance, method)  # type: ignore[arg-type]
        else:
            fn = obj.get_raw_f() if hasattr(obj, "get_raw_f") else obj
            self.resolve = lambda _method: fn
        if spec.web:
            from .web import WebHandler

            self.web = WebHandler(self.resolve(None), spec.web, self._call, spec.max_concurrent_inputs or 1)

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call sync or async user code from a plain thread."""
        result = fn(*args, **kwargs)
        if inspect.iscoroutine(result):
            if threading.current_thread() is threading.main_thread():
                if self._loop is None:
                    self._loop = asyncio.new_event_loop()
                return self._loop.run_until_complete(result)
            return asyncio.run(result)
        return result

    def _watch_signals(self) -> None:
        client = self._new_client()
        while True:
            try:
                sig = client.signals(timeout=20)
            except (ServerGone, RuntimeError):
                return
            if sig.cancel:
                self.cancellation.cancel(sig.cancel)
            if sig.stop:
                return

    # -- one input ------------------------------------------------------------------------

    def run_input(self, inp: ContainerInput, client: ContainerClient | None = None) -> list[ContainerOutput]:
        input_id = inp.input_id
        on_main = threading.current_thread() is threading.main_thread()
        if on_main:
            self.cancellation.current = input_id
        try:
            args, kwargs, method = self._args(inp)
            fn = self.resolve(method)
            if inspect.isgeneratorfunction(fn):
                return self._run_generator(fn, input_id, args, kwargs, client or self.client)
            result = self._call(fn, args, kwargs)
            if on_main:
                self.cancellation.current = None
            return [self._success(input_id, result, client)]
        except InputCancellation as exc:
            return [self._failure(input_id, exc, status="cancelled")]
        except BaseException as exc:  # noqa: BLE001 - the user's exception goes back to the caller
            return [self._failure(input_id, exc)]
        finally:
            if on_main:
                self.cancellation.current = None

    def _run_generator(self, fn: Any, input_id: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                       client: ContainerClient) -> list[ContainerOutput]:
        index = 0
        for item in fn(*args, **kwargs):
            out = self._success(input_id, item, client)
            out.gen_index = index
            client.exchange([out], want=0, timeout=0)
            index += 1
        return [ContainerOutput(input_id=input_id, status="success", gen_done=True, gen_index=index)]

    # -- serving -----------------------------------------------------------------------------

    def serve(self) -> int:
        hello = self.client.hello()
        self.spec = hello.spec
        os.environ.update(hello.env)  # the function's secrets
        try:
            self.load()
        except BaseException as exc:  # noqa: BLE001
            print(f"skiff: could not load {self.spec.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            self.client.init_failure(self._failure("", exc, status="init_failure"))
            return 1
        threading.Thread(target=self._watch_signals, name="skiff-signals", daemon=True).start()
        if self.web is not None:
            # The gateway sends requests straight to this socket; the loop below still
            # takes ordinary inputs (``.remote()`` of a fastapi_endpoint) and the stop.
            self.web.serve(os.environ["SKIFF_WEB_SOCKET"])
            self.client.web_ready()
        if self.spec.max_batch_size:
            self._serve_batched()
        elif self.spec.max_concurrent_inputs > 1:
            self._serve_concurrent()
        else:
            self._serve_sequential()
        if self.web is not None:
            self.web.close()
        for hook in self.exit_hooks:
            try:
                self._call(hook, (), {})
            except Exception as exc:  # noqa: BLE001
                print(f"skiff: @exit hook {getattr(hook, '__name__', hook)} failed: {exc!r}", file=sys.stderr)
        if os.environ.get("SKIFF_VOLUMES"):
            from ..volume import commit_mounted_volumes

            try:
                commit_mounted_volumes()  # a normal stop publishes what the container wrote
            except Exception as exc:  # noqa: BLE001
                print(f"skiff: committing volumes on exit failed: {exc!r}", file=sys.stderr)
        return 0

    def _serve_sequential(self) -> None:
        max_inputs = self.spec.max_inputs or 0
        done = 0
        outputs: list[ContainerOutput] = []
        # Inputs that take a while are taken (and answered) one at a time. Quick ones come
        # in batches: a batch of quick outputs waits a moment for its last one, and is
        # answered in one round trip (measured in bench/map_throughput.py).
        slow = False
        while True:
            batch = 1 if slow else PREFETCH
            want = batch if not max_inputs else max(0, min(batch, max_inputs - done))
            work = self.client.exchange(outputs, want, POLL)
            outputs = []
            if want == 0 or (work.stop and not work.inputs):
                return
            flushed = time.monotonic()
            for i, inp in enumerate(work.inputs):
                started = time.monotonic()
                outputs.extend(self.run_input(inp))
                done += 1
                slow = time.monotonic() - started > SLOW_INPUT
                if slow and i + 1 < len(work.inputs) and time.monotonic() - flushed > SLOW_INPUT:
                    # Don't hold finished outputs behind the rest of a prefetched batch.
                    self.client.exchange(outputs, want=0, timeout=0)
                    outputs, flushed = [], time.monotonic()

    def _serve_concurrent(self) -> None:
        limit = self.spec.max_concurrent_inputs
        slots = threading.Semaphore(limit)
        finished: queue.Queue[list[ContainerOutput] | None] = queue.Queue()
        sender = threading.Thread(target=self._send_outputs, args=(finished,), name="skiff-outputs", daemon=True)
        sender.start()
        pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="skiff-input")
        clients = threading.local()

        def work(inp: ContainerInput) -> None:
            if not hasattr(clients, "c"):
                clients.c = self._new_client()
            try:
                finished.put(self.run_input(inp, clients.c))
            finally:
                slots.release()

        while True:
            slots.acquire()
            free = 1
            while free < limit and slots.acquire(blocking=False):
                free += 1
            work_batch = self.client.exchange([], free, POLL)
            for inp in work_batch.inputs:
                pool.submit(work, inp)
            for _ in range(free - len(work_batch.inputs)):
                slots.release()
            if work_batch.stop and not work_batch.inputs:
                break
        pool.shutdown(wait=True)
        finished.put(None)
        sender.join()

    def _send_outputs(self, finished: queue.Queue[list[ContainerOutput] | None]) -> None:
        client = self._new_client()
        while True:
            first = finished.get()
            if first is None:
                return
            outputs = list(first)
            while True:
                try:
                    more = finished.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    finished.put(None)
                    break
                outputs.extend(more)
            client.exchange(outputs, want=0, timeout=0)

    def _serve_batched(self) -> None:
        size = self.spec.max_batch_size or 1
        wait = self.spec.batch_wait_ms / 1000
        outputs: list[ContainerOutput] = []
        while True:
            work = self.client.exchange(outputs, size, POLL)
            outputs = []
            batch = list(work.inputs)
            if work.stop and not batch:
                return
            deadline = time.monotonic() + wait
            while batch and len(batch) < size and (remaining := deadline - time.monotonic()) > 0:
                batch += self.client.exchange([], size - len(batch), remaining).inputs
            if batch:
                outputs = self.run_batch(batch)

    def run_batch(self, batch: list[ContainerInput]) -> list[ContainerOutput]:
        """Call the function once with lists, and hand each caller its own element."""
        ids = [inp.input_id for inp in batch]
        try:
            decoded = [self._args(inp) for inp in batch]
            fn = self.resolve(decoded[0][2])
            width = max(len(args) for args, _, _ in decoded)
            if any(len(args) != width for args, _, _ in decoded):
                raise TypeError("every call to a batched function must pass the same arguments")
            columns = [[args[i] for args, _, _ in decoded] for i in range(width)]
            keys = decoded[0][1].keys()
            kwcolumns = {k: [kw[k] for _, kw, _ in decoded] for k in keys}
            results = self._call(fn, tuple(columns), kwcolumns)
            if not isinstance(results, list | tuple) or len(results) != len(batch):
                got = len(results) if isinstance(results, list | tuple) else type(results).__name__
                raise ValueError(f"a batched function must return a list of {len(batch)} results (one per input), got {got}")
        except BaseException as exc:  # noqa: BLE001
            return [self._failure(i, exc) for i in ids]
        return [self._success(i, r) for i, r in zip(ids, results, strict=True)]


def _missing() -> Callable[..., Any]:
    raise RuntimeError("the function was not loaded")


def main() -> int:
    try:
        return Container().serve()
    except ServerGone as exc:
        print(f"skiff: {exc}; container exiting", file=sys.stderr)
        return 1


__all__ = ["Container", "main"]

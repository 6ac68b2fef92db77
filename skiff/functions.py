"""``Function``, the handle ``@app.function`` returns, and ``FunctionCall``, a call in flight.

```python
@app.function(retries=2)
def square(x: int) -> int:
    return x * x

square.remote(7)                 # 49, computed in a container
list(square.map(range(10)))      # fan out
call = square.spawn(9)           # fire now...
call.get()                       # ...collect later
```
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import string
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from ._options import FunctionOptions
from ._progress import MapProgress
from ._sync import dual, dual_classmethod, run_sync
from .exception import ExecutionError, InvalidError, NotFoundError, OutputExpiredError, TimeoutError
from .protocol import payload as wire_payload
from .protocol import serialization as ser
from .protocol.wire import (
    AutoscalerSettings,
    CallCreate,
    CallCreated,
    CallInputs,
    CallKind,
    CallOutputs,
    FunctionStats,
    InputItem,
    OutputItem,
    Payload,
    decode,
    encode,
)

if TYPE_CHECKING:
    from ._client import Client
    from .app import App

__all__ = ["Function", "FunctionCall"]

_T = TypeVar("_T")

MAP_BATCH = 500  # inputs per upload request
MAP_OUTSTANDING = 1000  # inputs sent but not yet answered, at most
_POLL = 25.0  # seconds one output long-poll may wait


async def _client() -> Client:
    from ._client import get_client

    return await get_client()


async def encode_payload(client: Client, data: bytes) -> Payload:
    payload, upload = wire_payload.pack(data)
    if upload is not None:
        await client.request("PUT", f"/blobs/{payload.blob_id}", content=upload)
    return payload


async def decode_payload(client: Client, payload: Payload | None) -> Any:
    if payload is None:
        return None
    data = wire_payload.inline_bytes(payload)
    if data is None:
        data = await client.get_bytes(f"/blobs/{payload.blob_id}")
    return ser.deserialize(data)


async def _output_value(client: Client, out: OutputItem) -> Any:
    """The value of one output, or the exception it carries (returned, not raised)."""
    if out.status == "success":
        return await decode_payload(client, out.result)
    return _Failure(wire_payload.failure_exception(out.result, out.exc_type, out.exc_message, out.traceback))


async def _outputs(client: Client, call_id: str, after: int, timeout: float) -> CallOutputs:
    """One long-poll for a call's outputs after ``after``."""
    res = await client.request("GET", f"/calls/{call_id}/outputs", params={"after": after, "timeout": timeout})
    return decode(CallOutputs, res)


def new_call_id() -> str:
    return "fc-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(20))


async def _send_inputs(client: Client, call_id: str | None, function_id: str, kind: CallKind,
                       inputs: list[InputItem], complete: bool, create: bool = False) -> str:
    """Start a call with its first inputs (``call_id`` None, or ``create``), or add more
    to it. Either is sent again across a lost connection: the call's id (chosen here)
    and the inputs' indices let the server drop what it already has."""
    if call_id is None or create:
        msg = CallCreate(function_id=function_id, kind=kind, inputs=inputs, inputs_complete=complete,
                         call_id=call_id or new_call_id())
        return str(decode(CallCreated, await client.request("POST", "/calls", json=encode(msg), idempotent=True)).call_id)
    await client.request("POST", f"/calls/{call_id}/inputs", json=encode(CallInputs(inputs=inputs, inputs_complete=complete)),
                         idempotent=True)
    return call_id


def _common_length(iterables: Iterable[Any]) -> int | None:
    """How many inputs a map will have, when every iterable knows its length."""
    lengths = [len(it) for it in iterables if hasattr(it, "__len__")]
    if not lengths or len(lengths) != len(list(iterables)):
        return None
    return min(lengths)


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Function:
    """A function that runs in skiff containers. Made by ``@app.function``."""

    def __init__(self, raw_f: Callable[..., Any], app: App, options: FunctionOptions) -> None:
        self._raw_f = raw_f
        self.app = app
        self.options = options
        self.tag = options.name or raw_f.__name__
        self.is_generator = inspect.isgeneratorfunction(raw_f) or inspect.isasyncgenfunction(raw_f)
        self.object_id: str | None = None
        self.__doc__ = raw_f.__doc__
        self.__name__ = raw_f.__name__
        self.__qualname__ = raw_f.__qualname__
        self.__module__ = raw_f.__module__

    def __repr__(self) -> str:
        return f"<skiff.Function {self.tag}>"

    def get_raw_f(self) -> Callable[..., Any]:
        return self._raw_f

    def local(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function here, in this process, as plain Python."""
        return self._raw_f(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.local(*args, **kwargs)

    async def _resolve_id(self) -> str:
        """The server-side function to call (a class method resolves its instance's)."""
        return self._function_id()

    def _args_payload(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        return ser.serialize_args(self.tag, args, kwargs)

    def _function_id(self) -> str:
        if self.object_id is None:
            raise ExecutionError(
                f"{self.tag}() is not running: call it inside `with app.run():`, from a "
                "`@app.local_entrypoint()` under `skiff run`, or use .local() to run it here"
            )
        return self.object_id

    async def _start_call(self, kind: CallKind, inputs: list[InputItem], complete: bool) -> tuple[Client, str]:
        client = await _client()
        return client, await _send_inputs(client, None, await self._resolve_id(), kind, inputs, complete)

    async def _one_input(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> InputItem:
        data = self._args_payload(args, kwargs)
        client = await _client()
        return InputItem(idx=0, args=await encode_payload(client, data))

    # -- deployed functions -------------------------------------------------------------

    @staticmethod
    def from_name(app_name: str, name: str) -> Function:
        """A deployed function, looked up by its app's name and its own, on first use.

        ```python
        square = skiff.Function.from_name("hello", "square")
        square.remote(4)
        ```
        """
        return _DeployedFunction(app_name, name)

    @dual
    async def get_web_url(self) -> str | None:
        """The URL a web function answers at, or None for other functions."""
        client = await _client()
        info = await client.request("GET", f"/functions/{await self._resolve_id()}")
        url: str | None = info.get("web_url")
        return url

    # -- the function's containers ------------------------------------------------------

    @dual
    async def update_autoscaler(
        self,
        *,
        min_containers: int | None = None,
        max_containers: int | None = None,
        buffer_containers: int | None = None,
        scaledown_window: float | None = None,
    ) -> None:
        """Change the running function's autoscaler settings; they apply at once.

        ```python
        embed.update_autoscaler(min_containers=2, max_containers=10)
        ```
        """
        settings = AutoscalerSettings(min_containers=min_containers, max_containers=max_containers,
                                      buffer_containers=buffer_containers, scaledown_window=scaledown_window)
        client = await _client()
        await client.request("POST", f"/functions/{await self._resolve_id()}/autoscaler", json=encode(settings))

    @dual
    async def get_current_stats(self) -> FunctionStats:
        """The queue and the containers right now: ``backlog``, ``num_total_runners``,
        ``num_running_inputs``."""
        client = await _client()
        data = await client.request("GET", f"/functions/{await self._resolve_id()}/stats")
        return FunctionStats(**data)

    # -- single calls -----------------------------------------------------------------

    @dual
    async def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function in a container and return its result."""
        await self._resolve_id()
        if self.is_generator:
            raise InvalidError(f"{self.tag} is a generator: call it with .remote_gen(), not .remote()")
        item = await self._one_input(args, kwargs)
        client, call_id = await self._start_call("remote", [item], True)

        async def resend() -> None:
            # The server restarted and did not keep this call (it keeps spawned and mapped
            # ones): send it again, under the same id.
            await _send_inputs(client, call_id, await self._resolve_id(), "remote", [item], True, create=True)

        return await FunctionCall(call_id)._get(timeout=None, resend=resend)

    async def _start_call_id(self, kind: CallKind, item: InputItem) -> str:
        _, call_id = await self._start_call(kind, [item], True)
        return call_id

    @dual
    async def spawn(self, *args: Any, **kwargs: Any) -> FunctionCall:
        """Start the function and return at once; ``.get()`` on the result waits for it."""
        await self._resolve_id()
        if self.is_generator:
            raise InvalidError(f"{self.tag} is a generator: spawn() cannot collect its items; use .remote_gen()")
        call_id = await self._start_call_id("spawn", await self._one_input(args, kwargs))
        return FunctionCall(call_id, await self._resolve_id())

    @dual
    async def remote_gen(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Run a generator function in a container, yielding its items as they come."""
        await self._resolve_id()
        if not self.is_generator:
            raise InvalidError(f"{self.tag} is not a generator: call it with .remote()")
        client, call_id = await self._start_call("generator", [await self._one_input(args, kwargs)], True)
        after, next_index, early = 0, 0, {}
        while True:
            res = await _outputs(client, call_id, after, _POLL)
            for out in res.outputs:
                after = out.seq
                if out.status != "success":
                    raise (await _output_value(client, out)).exc
                if out.gen_done:
                    return
                early[out.gen_index or 0] = out
                while next_index in early:
                    yield await decode_payload(client, early.pop(next_index).result)
                    next_index += 1
            if res.done:
                return

    # -- many calls ------------------------------------------------------------------------

    @dual
    async def map(
        self,
        *input_iterators: Iterable[Any],
        kwargs: dict[str, Any] | None = None,
        order_outputs: bool = True,
        return_exceptions: bool = False,
    ) -> AsyncIterator[Any]:
        """Run the function over every input in parallel, yielding results as they come.

        ```python
        for y in square.map(range(1000)):   # results in input order
            ...
        ```
        """
        total = _common_length(input_iterators)
        async for value in self._map(zip(*input_iterators, strict=False), kwargs or {}, order_outputs,
                                     return_exceptions, total):
            yield value

    @dual
    async def starmap(
        self,
        input_iterator: Iterable[tuple[Any, ...]],
        *,
        kwargs: dict[str, Any] | None = None,
        order_outputs: bool = True,
        return_exceptions: bool = False,
    ) -> AsyncIterator[Any]:
        """Like :meth:`map`, but each input is a tuple of positional arguments."""
        total = _common_length([input_iterator])
        async for value in self._map(iter(input_iterator), kwargs or {}, order_outputs, return_exceptions, total):
            yield value

    @dual
    async def for_each(self, *input_iterators: Iterable[Any], kwargs: dict[str, Any] | None = None,
                       ignore_exceptions: bool = False) -> None:
        """Run the function over every input for its side effects, discarding results."""
        total = _common_length(input_iterators)
        async for _ in self._map(zip(*input_iterators, strict=False), kwargs or {}, False, ignore_exceptions, total):
            pass

    @dual
    async def spawn_map(self, *input_iterators: Iterable[Any], kwargs: dict[str, Any] | None = None) -> FunctionCall:
        """Start the function over every input and return at once, without waiting for
        results; ``.get(index=i)`` on the returned call collects one later."""
        if self.is_generator:
            raise InvalidError(f"{self.tag} is a generator; .spawn_map() needs a function that returns")
        client = await _client()
        fid = await self._resolve_id()
        call_id: str | None = None
        batch: list[InputItem] = []
        idx = 0

        async def flush(last: bool) -> None:
            nonlocal call_id, batch
            call_id = await _send_inputs(client, call_id, fid, "spawn", batch, last)
            batch = []

        for args in zip(*input_iterators, strict=False):
            batch.append(InputItem(idx=idx, args=await encode_payload(client, self._args_payload(tuple(args), kwargs or {}))))
            idx += 1
            if len(batch) >= MAP_BATCH:
                await flush(False)
        await flush(True)
        assert call_id is not None
        return FunctionCall(call_id, fid, num_inputs=idx)

    async def _map(self, arg_tuples: Iterable[tuple[Any, ...]], kwargs: dict[str, Any], order_outputs: bool,
                   return_exceptions: bool, total_hint: int | None = None) -> AsyncIterator[Any]:
        if self.is_generator:
            raise InvalidError(f"{self.tag} is a generator; .map() needs a function that returns")
        client = await _client()
        fid = await self._resolve_id()
        window = asyncio.Semaphore(MAP_OUTSTANDING)
        call_id: str | None = None
        call_ready = asyncio.Event()
        total: int | None = None

        async def flush(batch: list[InputItem], last: bool) -> None:
            nonlocal call_id
            call_id = await _send_inputs(client, call_id, fid, "map", batch, last)
            call_ready.set()

        async def send() -> None:
            nonlocal total
            idx, batch = 0, list[InputItem]()
            for args in arg_tuples:
                if batch and (len(batch) >= MAP_BATCH or window.locked()):
                    await flush(batch, False)  # never wait on the window with unsent inputs
                    batch = []
                await window.acquire()
                data = self._args_payload(tuple(args), kwargs)
                batch.append(InputItem(idx=idx, args=await encode_payload(client, data)))
                idx += 1
            await flush(batch, True)
            total = idx

        async def poll(after: int) -> CallOutputs:
            assert call_id is not None
            return await _outputs(client, call_id, after, _POLL)

        async def first_of(aw: Awaitable[_T]) -> _T:
            """Await ``aw``, but fail fast if the sender failed meanwhile."""
            task = asyncio.ensure_future(aw)
            if not sender.done():
                await asyncio.wait([task, sender], return_when=asyncio.FIRST_COMPLETED)
            failure = sender.exception() if sender.done() else None
            if failure is not None:
                task.cancel()
                raise failure
            return await task

        sender = asyncio.create_task(send())
        received = 0
        running = self.app._running
        progress = MapProgress(self.tag, total_hint, enabled=running is not None and running.show_progress)
        progress.__enter__()
        try:
            await first_of(call_ready.wait())
            after, next_idx, held = 0, 0, {}
            while total is None or received < total:
                res = await first_of(poll(after))
                for out in res.outputs:
                    after = out.seq
                    received += 1
                    window.release()
                    progress.advance()
                    value = await _output_value(client, out)
                    if isinstance(value, _Failure) and not return_exceptions:
                        raise value.exc
                    if isinstance(value, _Failure):
                        value = value.exc
                    if not order_outputs:
                        yield value
                        continue
                    held[out.idx] = value
                    while next_idx in held:
                        yield held.pop(next_idx)
                        next_idx += 1
                if res.done:
                    break
        finally:
            progress.__exit__(None, None, None)
            if not sender.done():
                sender.cancel()
            if call_id is not None and (total is None or received < total):
                try:
                    await client.request("POST", f"/calls/{call_id}/cancel")
                except Exception:
                    pass


class FunctionCall:
    """A call started with ``.spawn()`` or ``.spawn_map()``; collect it with ``.get()``
    or stop it with ``.cancel()``."""

    def __init__(self, object_id: str, function_id: str | None = None, num_inputs: int = 1) -> None:
        self.object_id = object_id
        self.function_id = function_id
        self._num_inputs = num_inputs

    def __repr__(self) -> str:
        return f"<skiff.FunctionCall {self.object_id}>"

    def num_inputs(self) -> int:
        """How many inputs the call has: 1 for ``.spawn()``, more for ``.spawn_map()``."""
        return self._num_inputs

    @dual_classmethod
    async def from_id(cls: type[FunctionCall], function_call_id: str) -> FunctionCall:
        """A handle on an existing call, e.g. one spawned by another process."""
        client = await _client()
        await client.request("GET", f"/calls/{function_call_id}/outputs", params={"after": 0, "timeout": 0})
        return cls(function_call_id)

    @dual
    async def get(self, timeout: float | None = None, *, index: int = 0) -> Any:
        """Wait for the result (of input ``index`` for a ``spawn_map``). Raises
        ``skiff.exception.TimeoutError`` if ``timeout`` seconds pass first."""
        return await self._get(timeout, index)

    async def _get(self, timeout: float | None, index: int = 0,
                   resend: Callable[[], Awaitable[None]] | None = None) -> Any:
        """The output of input ``index``. With ``resend``, a call the server does not know
        (it restarted) is sent again, at most twice, by calling it."""
        client = await _client()
        deadline = None if timeout is None else time.monotonic() + timeout
        after, resent = 0, 0
        while True:
            wait = _POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic()))
            # The server keeps a spawned call's outputs however they are read, so a result
            # can be collected again.
            try:
                res = await _outputs(client, self.object_id, after, wait)
            except NotFoundError:  # the server's answer about the call, not the function's error
                if resend is None or resent == 2:
                    raise
                resent += 1
                await resend()
                after = 0
                continue
            for out in res.outputs:
                after = max(after, out.seq)
                if out.idx != index:
                    continue
                value = await _output_value(client, out)
                if isinstance(value, _Failure):
                    raise value.exc
                return value
            if res.done and not res.outputs:
                raise OutputExpiredError(f"call {self.object_id} has no output {index}")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"call {self.object_id} did not finish within {timeout} s")

    @dual
    async def cancel(self, terminate_containers: bool = False) -> None:
        """Stop the call: pending inputs are dropped and running ones interrupted; with
        ``terminate_containers=True`` the containers running them are stopped too."""
        client = await _client()
        await client.request("POST", f"/calls/{self.object_id}/cancel",
                             params={"terminate_containers": terminate_containers})

    @staticmethod
    def gather(*calls: FunctionCall) -> list[Any]:
        """Wait for several spawned calls and return their results in order."""
        async def _all() -> list[Any]:
            return list(await asyncio.gather(*(c._get(None) for c in calls)))

        results: list[Any] = run_sync(_all())
        return results


class _DeployedFunction(Function):
    """A handle from :meth:`Function.from_name`: resolved against the server on first use."""

    def __init__(self, app_name: str, name: str) -> None:
        def missing(*_a: Any, **_k: Any) -> Any:
            raise InvalidError(f"{app_name}/{name} was looked up by name; it has no local code to run")

        missing.__name__ = missing.__qualname__ = name
        super().__init__(missing, _NO_APP, FunctionOptions())
        self.tag = name
        self._lookup = (app_name, name)

    def __repr__(self) -> str:
        return f"<skiff.Function {self._lookup[0]}/{self._lookup[1]}>"

    async def _resolve_id(self) -> str:
        if self.object_id is None:
            client = await _client()
            found = await client.request("GET", f"/deployed/{self._lookup[0]}/functions/{self._lookup[1]}")
            if found.get("is_class"):
                raise InvalidError(f"{self._lookup[1]} is a class: use skiff.Cls.from_name({self._lookup[0]!r}, {self._lookup[1]!r})")
            self.object_id = found["function_id"]
            self.is_generator = bool(found.get("is_generator"))
        return self.object_id


class _NoApp:
    _running = None
    name = None


_NO_APP: Any = _NoApp()

"""The one place where skiff's async implementation gets its blocking face.

The SDK is written with ``async def``. Users mostly call it from plain code, so every
public coroutine method is exposed twice: ``f.remote(x)`` blocks, ``await f.remote.aio(x)``
does not. The blocking form runs the coroutine on a single event loop that lives in a
daemon thread for the life of the process; that loop owns every HTTP connection, so
connection pools are shared and never touched from two loops.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from typing import Any

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def event_loop() -> asyncio.AbstractEventLoop:
    """The SDK's background loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="skiff-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on the SDK loop and block until it finishes.

    Called from the SDK loop itself this would deadlock, so it says so instead.
    """
    loop = event_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError("blocking skiff call made from inside skiff's event loop; use `.aio`")
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result()
    except KeyboardInterrupt:
        future.cancel()
        raise


def iterate_sync(agen: AsyncGenerator[Any, Any]) -> Iterator[Any]:
    """Drive an async generator on the SDK loop, yielding its items to blocking code."""
    try:
        while True:
            try:
                yield run_sync(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            try:
                run_sync(aclose())
            except RuntimeError:
                pass


class _BoundDual:
    __slots__ = ("_obj", "_fn")

    def __init__(self, obj: Any, fn: Callable[..., Any]) -> None:
        self._obj = obj
        self._fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self._fn(self._obj, *args, **kwargs)
        if inspect.isasyncgen(result):
            return iterate_sync(result)
        return run_sync(result)

    def aio(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(self._obj, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<skiff method {self._fn.__qualname__} of {self._obj!r}>"


class dual:
    """Descriptor: an ``async def`` method callable blocking, and as ``.aio`` for asyncio.

    ```python
    class Function:
        @dual
        async def remote(self, *args, **kwargs): ...

    f.remote(1)              # blocks
    await f.remote.aio(1)    # awaits
    ```
    Async generator methods become blocking iterators the same way.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn
        # typeshed's update_wrapper wants a callable wrapper; this is a descriptor.
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return _BoundDual(obj, self._fn)


class dual_classmethod:
    """Like :class:`dual`, for class methods (``FunctionCall.from_id``)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn
        # typeshed's update_wrapper wants a callable wrapper; this is a descriptor.
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return _BoundDual(objtype if objtype is not None else type(obj), self._fn)

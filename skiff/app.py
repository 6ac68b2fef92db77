"""``App``: the unit you run and (later) deploy, and the decorators that fill it.

```python
import skiff

app = skiff.App("hello")

@app.function(timeout=60, retries=2)
def square(x: int) -> int:
    return x * x

@app.local_entrypoint()
def main():
    print(square.remote(7))
```
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._options import build_options
from ._sync import run_sync
from .cls import Cls, wrap_class
from .exception import InvalidError
from .functions import Function
from .protocol.lifecycle import marks
from .protocol.names import check_name
from .retries import Retries

if TYPE_CHECKING:
    from ._runner import RunningApp

__all__ = ["App", "LocalEntrypoint"]


class LocalEntrypoint:
    """A function that runs on your machine while the app runs: ``skiff run`` calls it."""

    def __init__(self, raw_f: Callable[..., Any], app: App) -> None:
        self.raw_f = raw_f
        self.app = app
        self.__name__ = raw_f.__name__
        self.__doc__ = raw_f.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.raw_f(*args, **kwargs)


class _RunContext:
    """What ``app.run()`` returns: a context manager usable with ``with`` or ``async with``."""

    def __init__(self, app: App, show_logs: bool, show_progress: bool | None) -> None:
        from ._runner import RunningApp, in_container

        self._noop = in_container()  # importing the user's module in a container must not start apps
        self._running = RunningApp(app, show_logs=show_logs, show_progress=show_progress)
        self.app = app

    def __enter__(self) -> App:
        if not self._noop:
            run_sync(self._running.start())
        return self.app

    def __exit__(self, *exc: Any) -> None:
        if not self._noop:
            run_sync(self._running.stop())

    async def __aenter__(self) -> App:
        if not self._noop:
            import asyncio

            from ._sync import event_loop

            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._running.start(), event_loop()))
        return self.app

    async def __aexit__(self, *exc: Any) -> None:
        if not self._noop:
            import asyncio

            from ._sync import event_loop

            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._running.stop(), event_loop()))


class App:
    """A named group of functions that run together.

    ```python
    app = skiff.App("my-app")

    @app.function()
    def f(x): ...

    with app.run():
        f.remote(1)
    ```
    """

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            check_name("app", name)  # the server's rule for every object's name
        self.name = name
        self.registered_functions: dict[str, Function] = {}
        self.registered_classes: dict[str, Cls] = {}
        self.registered_entrypoints: dict[str, LocalEntrypoint] = {}
        self._running: RunningApp | None = None  # set while the app runs

    def __repr__(self) -> str:
        return f"<skiff.App {self.name!r}>"

    @property
    def app_id(self) -> str | None:
        """The server's id for this app while it runs (``None`` before)."""
        return self._running.app_id if self._running is not None else None

    def function(
        self,
        _warn_parentheses_missing: Any = None,
        *,
        image: Any = None,
        schedule: Any = None,
        env: dict[str, str] | None = None,
        secrets: list[Any] | None = None,
        gpu: str | list[str] | None = None,
        serialized: bool = False,
        network_file_systems: dict[str, Any] | None = None,
        volumes: dict[str, Any] | None = None,
        cpu: float | tuple[float, float] | None = None,
        memory: int | tuple[int, int] | None = None,
        ephemeral_disk: int | None = None,
        min_containers: int | None = None,
        max_containers: int | None = None,
        buffer_containers: int | None = None,
        scaledown_window: float | None = None,
        proxy: Any = None,
        retries: int | Retries | None = None,
        timeout: float | None = None,
        name: str | None = None,
        cloud: str | None = None,
        region: str | list[str] | None = None,
        enable_memory_snapshot: bool | None = None,
        block_network: bool | None = None,
        max_inputs: int | None = None,
        i6pn: bool | None = None,
        # Older names, accepted with a DeprecationWarning:
        concurrency_limit: int | None = None,
        keep_warm: int | None = None,
        container_idle_timeout: float | None = None,
        allow_concurrent_inputs: int | None = None,
    ) -> Callable[[Callable[..., Any]], Function]:
        """Turn a function into one that runs in skiff containers.

        ```python
        @app.function(timeout=60, retries=skiff.Retries(max_retries=3, initial_delay=0.5))
        def square(x: int) -> int:
            return x * x
        ```
        """
        if _warn_parentheses_missing is not None:
            raise InvalidError("use @app.function() with parentheses, not @app.function")
        given = {k: v for k, v in locals().items() if k not in ("self", "_warn_parentheses_missing")}
        if not given["serialized"]:
            given.pop("serialized")
        options = build_options(given)

        def wrapper(f: Callable[..., Any]) -> Function:
            if isinstance(f, Function):
                raise InvalidError(f"{f.tag} is already a skiff function; decorate it once")
            if not callable(f) or inspect.isclass(f):
                raise InvalidError(f"@app.function() decorates a function, got {f!r}")
            fn = Function(f, self, options.with_marks(marks(f)))
            if fn.tag in self.registered_functions:
                raise InvalidError(f"app {self.name!r} already has a function named {fn.tag!r}")
            self.registered_functions[fn.tag] = fn
            return fn

        return wrapper

    def cls(
        self,
        _warn_parentheses_missing: Any = None,
        **kwargs: Any,
    ) -> Callable[[type], Cls]:
        """Turn a class into one whose containers keep state between inputs. Takes the
        same arguments as :meth:`function`.

        ```python
        @app.cls(scaledown_window=300)
        class Model:
            @skiff.enter()
            def load(self): ...

            @skiff.method()
            def predict(self, x): ...
        ```
        """
        if _warn_parentheses_missing is not None:
            raise InvalidError("use @app.cls() with parentheses, not @app.cls")
        allowed = set(inspect.signature(App.function).parameters) - {"self", "_warn_parentheses_missing"}
        unknown = set(kwargs) - allowed
        if unknown:
            raise TypeError(f"App.cls() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        options = build_options(kwargs)

        def wrapper(user_cls: type) -> Cls:
            c = wrap_class(user_cls, self, options.with_marks(marks(user_cls)))
            if c.tag in self.registered_functions or c.tag in self.registered_classes:
                raise InvalidError(f"app {self.name!r} already has something named {c.tag!r}")
            self.registered_classes[c.tag] = c
            return c

        return wrapper

    def local_entrypoint(self, _warn_parentheses_missing: Any = None, *, name: str | None = None
                         ) -> Callable[[Callable[..., Any]], LocalEntrypoint]:
        """Mark the function ``skiff run`` calls on your machine; its parameters become CLI flags."""
        if _warn_parentheses_missing is not None:
            raise InvalidError("use @app.local_entrypoint() with parentheses")

        def wrapper(f: Callable[..., Any]) -> LocalEntrypoint:
            entry = LocalEntrypoint(f, self)
            self.registered_entrypoints[name or f.__name__] = entry
            return entry

        return wrapper

    def run(self, *, show_logs: bool = True, show_progress: bool | None = None) -> _RunContext:
        """Run the app for the duration of a ``with`` block: its functions can be called.
        ``show_logs`` streams the containers' output here; ``show_progress`` draws bars
        for long maps (default: like ``show_logs``; ``SKIFF_NO_PROGRESS=1`` turns them off).

        ```python
        with app.run():
            print(square.remote(4))
        ```
        """
        return _RunContext(self, show_logs, show_progress)

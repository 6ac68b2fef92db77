"""Decorators that mark methods and functions for the container: ``@skiff.enter()``,
``@skiff.exit()``, ``@skiff.method()``, ``@skiff.concurrent(...)``, ``@skiff.batched(...)``.

They return the function itself with a marker attribute, so a decorated method stays a
plain method you can call and test locally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .exception import InvalidError
from .protocol.lifecycle import MARK

F = TypeVar("F", bound=Callable[..., Any])

def _mark(f: Any, **info: Any) -> Any:
    if not callable(f):
        raise InvalidError(f"expected a function or class to decorate, got {f!r}")
    marks = dict(getattr(f, MARK, {}))
    marks.update(info)
    setattr(f, MARK, marks)
    return f


def enter(*, snap: bool = False) -> Callable[[F], F]:
    """Run this method once per container, before its first input.

    ```python
    @app.cls()
    class Model:
        @skiff.enter()
        def load(self):
            self.weights = load_weights()
    ```
    """
    if snap:
        raise InvalidError("enter(snap=True) needs memory snapshots, which skiff does not have yet")
    return lambda f: _mark(f, enter=True)


def exit() -> Callable[[F], F]:  # noqa: A001 - Modal's name
    """Run this method when the container stops (scale-down, app stop)."""
    return lambda f: _mark(f, exit=True)


def method(*, is_generator: bool | None = None) -> Callable[[F], F]:
    """Expose this method of an ``@app.cls`` class for ``.remote()``, ``.map()`` and the rest."""
    return lambda f: _mark(f, method=True, is_generator=is_generator)


def concurrent(*, max_inputs: int, target_inputs: int | None = None) -> Callable[[F], F]:
    """Let one container run up to ``max_inputs`` inputs at once (async functions as tasks,
    sync ones in threads). The autoscaler aims for ``target_inputs`` per container.

    ```python
    @app.function()
    @skiff.concurrent(max_inputs=100, target_inputs=80)
    async def fetch(url): ...
    ```
    """
    if isinstance(max_inputs, bool) or not isinstance(max_inputs, int) or max_inputs < 1:
        raise InvalidError(f"concurrent(max_inputs=) must be an int of at least 1, got {max_inputs!r}")
    if target_inputs is not None and (
        isinstance(target_inputs, bool) or not isinstance(target_inputs, int) or not 1 <= target_inputs <= max_inputs
    ):
        raise InvalidError(f"concurrent(target_inputs=) must be an int between 1 and max_inputs, got {target_inputs!r}")
    return lambda f: _mark(f, max_concurrent=max_inputs, target_concurrent=target_inputs or max_inputs)


def batched(*, max_batch_size: int, wait_ms: int) -> Callable[[F], F]:
    """Gather single calls into lists: the function takes lists and returns a list of the
    same length, and each caller gets its own element back.

    ```python
    @app.function()
    @skiff.batched(max_batch_size=32, wait_ms=50)
    def embed(texts: list[str]) -> list[list[float]]: ...

    embed.remote("one text")   # -> one embedding
    ```
    """
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or not 1 <= max_batch_size <= 1000:
        raise InvalidError(f"batched(max_batch_size=) must be an int from 1 to 1000, got {max_batch_size!r}")
    if isinstance(wait_ms, bool) or not isinstance(wait_ms, int) or not 0 <= wait_ms <= 10 * 60 * 1000:
        raise InvalidError(f"batched(wait_ms=) must be an int of milliseconds from 0 to 600000, got {wait_ms!r}")
    return lambda f: _mark(f, max_batch_size=max_batch_size, batch_wait_ms=wait_ms)


_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def _check_label(label: str | None) -> None:
    import re

    if label is not None and not re.match(r"^[a-z0-9][a-z0-9-]{0,62}$", label):
        raise InvalidError(f"label= must be lowercase letters, digits and '-' (at most 63), got {label!r}")


def fastapi_endpoint(
    _warn_parentheses_missing: Any = None,
    *,
    method: str = "GET",
    label: str | None = None,
    docs: bool = False,
    requires_proxy_auth: bool = False,
) -> Callable[[F], F]:
    """Serve the function over HTTP as a FastAPI route (the image needs ``fastapi``).

    ```python
    @app.function(image=skiff.Image.debian_slim().pip_install("fastapi[standard]"))
    @skiff.fastapi_endpoint(method="POST")
    def generate(request: dict) -> dict: ...
    ```
    Deployed, it answers at ``http://<server>/<app>/<label>`` (label: the function's name).
    """
    if _warn_parentheses_missing is not None:
        raise InvalidError("use @skiff.fastapi_endpoint() with parentheses")
    if not isinstance(method, str) or method.upper() not in _METHODS:
        raise InvalidError(f"fastapi_endpoint(method=) must be one of {sorted(_METHODS)}, got {method!r}")
    _check_label(label)
    web = {"type": "fastapi", "method": method.upper(), "label": label, "docs": bool(docs),
           "requires_proxy_auth": bool(requires_proxy_auth)}
    return lambda f: _mark(f, web=web)


def web_endpoint(_warn_parentheses_missing: Any = None, **kwargs: Any) -> Callable[[F], F]:
    """The older name of :func:`fastapi_endpoint`."""
    import warnings

    warnings.warn("web_endpoint is deprecated; use fastapi_endpoint (it means the same)", DeprecationWarning,
                  stacklevel=2)
    return fastapi_endpoint(_warn_parentheses_missing, **kwargs)


def asgi_app(_warn_parentheses_missing: Any = None, *, label: str | None = None,
             requires_proxy_auth: bool = False) -> Callable[[F], F]:
    """Serve the ASGI app the function returns (FastAPI, Starlette, ...)."""
    if _warn_parentheses_missing is not None:
        raise InvalidError("use @skiff.asgi_app() with parentheses")
    _check_label(label)
    return lambda f: _mark(f, web={"type": "asgi", "label": label, "requires_proxy_auth": bool(requires_proxy_auth)})


def wsgi_app(_warn_parentheses_missing: Any = None, *, label: str | None = None,
             requires_proxy_auth: bool = False) -> Callable[[F], F]:
    """Serve the WSGI app the function returns (Flask, Django, ...)."""
    if _warn_parentheses_missing is not None:
        raise InvalidError("use @skiff.wsgi_app() with parentheses")
    _check_label(label)
    return lambda f: _mark(f, web={"type": "wsgi", "label": label, "requires_proxy_auth": bool(requires_proxy_auth)})


def web_server(port: int, *, startup_timeout: float = 5.0, label: str | None = None,
               requires_proxy_auth: bool = False) -> Callable[[F], F]:
    """Serve whatever the function starts listening on ``port`` inside the container."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidError(f"web_server(port=) must be a port number, got {port!r}")
    if not isinstance(startup_timeout, int | float) or startup_timeout <= 0:
        raise InvalidError(f"web_server(startup_timeout=) must be a number of seconds above 0, got {startup_timeout!r}")
    _check_label(label)
    web = {"type": "server", "port": port, "startup_timeout": float(startup_timeout), "label": label,
           "requires_proxy_auth": bool(requires_proxy_auth)}
    return lambda f: _mark(f, web=web)

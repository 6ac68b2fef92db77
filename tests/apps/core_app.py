"""Functions the end-to-end tests call. Each test runs this app with ``app.run()``."""

from __future__ import annotations

import os
import time

import skiff

app = skiff.App("core-tests")


@app.function()
def square(x: int) -> int:
    print(f"squaring {x}")
    return x * x


@app.function()
def add(a: int, b: int = 0) -> int:
    return a + b


class Boom(ValueError):
    pass


def _explode(x: int) -> None:
    raise Boom(f"bad input {x}")


@app.function()
def fails(x: int) -> int:
    _explode(x)
    return x


@app.function(timeout=1)
def sleeps(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


_attempts: dict[str, int] = {}


@app.function(max_containers=1, retries=skiff.Retries(max_retries=3, initial_delay=0.0, backoff_coefficient=1.0))
def flaky(key: str, succeed_on: int) -> int:
    """Fails until it has run ``succeed_on`` times for ``key`` (counted in its one container)."""
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] < succeed_on:
        raise RuntimeError(f"attempt {_attempts[key]} fails")
    return _attempts[key]


@app.function(retries=skiff.Retries(max_retries=1, initial_delay=0.0))
def sleeps_then_answers(seconds: float) -> str:
    """The tests kill this one's container mid-input; the retry answers."""
    time.sleep(seconds)
    return "answered"


@app.function()
def sleeps_forever() -> None:
    time.sleep(600)


@app.function()
def countdown(n: int):
    yield from range(n, 0, -1)


@app.function()
def echo(value):
    return value


@app.function()
def blob_size(data: bytes) -> int:
    return len(data)


@app.function()
def make_bytes(n: int) -> bytes:
    return b"x" * n


@app.function()
def env_value(name: str) -> str | None:
    return os.environ.get(name)


@app.function(scaledown_window=1)
def quick_idle(x: int) -> int:
    return x


@app.function()
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds

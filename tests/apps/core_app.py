"""Functions the end-to-end tests call. Each test runs this app with ``app.run()``."""

from __future__ import annotations

import os
import time
from pathlib import Path

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


@app.function(retries=skiff.Retries(max_retries=3, initial_delay=0.0, backoff_coefficient=1.0))
def flaky(counter_file: str, succeed_on: int) -> int:
    """Fails until it has been called ``succeed_on`` times (counted in a file)."""
    path = Path(counter_file)
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    if n < succeed_on:
        raise RuntimeError(f"attempt {n} fails")
    return n


@app.function(retries=skiff.Retries(max_retries=1, initial_delay=0.0))
def dies_once(marker_file: str) -> int:
    """Kills its own container (SIGKILL) the first time it runs."""
    path = Path(marker_file)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), 9)
    return os.getpid()


@app.function()
def always_dies(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)


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

"""Functions and classes for the autoscaling, class, concurrency and batching tests."""

import asyncio
import os
import threading
import time

import skiff

app = skiff.App("scale-tests")


@app.cls(scaledown_window=30)
class Model:
    size: str = skiff.parameter(default="small")

    @skiff.enter()
    def load(self):
        self.loads = getattr(self, "loads", 0) + 1
        self.served = 0
        print(f"enter ran for {self.size}")

    @skiff.method()
    def predict(self, x: int) -> dict:
        self.served += 1
        return {"size": self.size, "x": x, "loads": self.loads, "served": self.served,
                "container": os.environ.get("SKIFF_CONTAINER_ID", "local")}

    @skiff.method()
    def count_up(self, n: int):
        yield from range(n)

    @skiff.exit()
    def close(self):
        print(f"exit ran for {self.size} after {self.served} inputs")


@app.function(max_containers=1)
@skiff.concurrent(max_inputs=4)
def overlap(seconds: float) -> tuple[float, float, str]:
    start = time.monotonic()
    time.sleep(seconds)
    return start, time.monotonic(), threading.current_thread().name


@app.function(max_containers=1)
@skiff.concurrent(max_inputs=10)
async def overlap_async(seconds: float) -> tuple[float, float]:
    start = time.monotonic()
    await asyncio.sleep(seconds)
    return start, time.monotonic()


@app.function(max_containers=1)
@skiff.batched(max_batch_size=8, wait_ms=200)
def batch_sizes(xs: list[int]) -> list[tuple[int, int]]:
    return [(x, len(xs)) for x in xs]


@app.function(max_containers=1)
@skiff.batched(max_batch_size=4, wait_ms=10)
def wrong_length(xs: list[int]) -> list[int]:
    return xs[:1]


@app.function(min_containers=2)
def warm(x: int) -> int:
    return x


@app.function(max_containers=2, scaledown_window=30)
def capped(seconds: float) -> str:
    time.sleep(seconds)
    return os.environ["SKIFF_CONTAINER_ID"]


@app.function(buffer_containers=1, max_containers=3, scaledown_window=2)
def buffered(seconds: float) -> str:
    time.sleep(seconds)
    return os.environ["SKIFF_CONTAINER_ID"]


@app.function(scaledown_window=1)
def short_lived(x: int) -> int:
    return x


@app.function()
def adjustable(x: int) -> int:
    return x

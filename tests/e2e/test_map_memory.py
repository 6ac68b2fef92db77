"""A long map keeps a bounded number of inputs in flight, so memory stays flat on both
sides (bench/map_throughput.py measures the 100,000-input case)."""

from __future__ import annotations

import threading
from pathlib import Path

from skiff import functions
from tests.apps import core_app
from tests.apps.core_app import app


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_long_map_holds_a_bounded_window_and_flat_memory(client_env):
    n = 20_000
    server_pid = client_env.proc.pid
    with app.run(show_logs=False, show_progress=False):
        list(core_app.echo.map(range(1000)))  # warm up containers and caches
        server_before, client_before = rss_mb(server_pid), rss_mb()
        peak = {"held": 0, "server": server_before}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                stats = core_app.echo.get_current_stats()
                peak["held"] = max(peak["held"], stats.backlog + stats.num_running_inputs)
                peak["server"] = max(peak["server"], rss_mb(server_pid))
                done.wait(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            total = sum(1 for _ in core_app.echo.map(range(n)))
        finally:
            done.set()
            sampler.join()
        client_after = rss_mb()
    assert total == n
    assert peak["held"] <= functions.MAP_OUTSTANDING + functions.MAP_BATCH
    assert peak["server"] - server_before < 100, peak
    assert client_after - client_before < 100

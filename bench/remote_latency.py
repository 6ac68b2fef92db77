"""Warm call latency and fan-out throughput of skiff, measured beside Ray on the same machine.

    .venv/bin/python bench/remote_latency.py [--n-remote 1000] [--n-map 10000] [--repeats 3]

What it measures, for a trivial function (``echo(x) -> x``):

- warm remote p50 / p99: the round trip of one ``echo.remote(x)`` (skiff) or
  ``ray.get(echo.remote(x))`` (Ray), timed call by call over ``--n-remote`` sequential
  calls, after warm-up calls that leave a container (a Ray worker) running;
- map throughput: inputs per second of ``list(echo.map(range(n)))`` (skiff) or
  ``ray.get([echo.remote(i) for i in range(n)])`` (Ray) over ``--n-map`` inputs, after one
  untimed warm-up pass of the same size (which also lets skiff scale its containers up).

Each measurement runs ``--repeats`` times and the median of the repeats is reported.

How: the script starts its own ``skiff server`` subprocess (default settings, so the
runtime is whichever the server picks, and the report names it; a scratch ``SKIFF_HOME``
in a temporary directory; a free port), measures skiff, stops the server (and with it
every container), and only then starts Ray with ``num_cpus=2`` and measures it, so the
two never compete for the CPUs. It prints a table and appends it, with the date, the
machine, the software versions and the command, to ``bench/RESULTS.md``.

``echo`` is defined at module level because a skiff container imports the function's
module by name (this file's stem, ``remote_latency``); everything else runs under
``if __name__ == "__main__"`` so that import does nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import skiff
from skiff._local_server import is_healthy

app = skiff.App("bench-remote-latency")


@app.function()
def echo(x: int) -> int:
    return x


HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
WARMUP_CALLS = 20
TARGET_REMOTE_P50_MS = 5.0
TARGET_MAP_PER_S = 2000.0


@dataclass
class Measured:
    p50_ms: float
    p99_ms: float
    map_per_s: float


# -- measuring -------------------------------------------------------------------------


def latency_ms(call: Callable[[int], int], n: int) -> tuple[float, float]:
    """p50 and p99 of ``n`` sequential calls, in milliseconds (after ``WARMUP_CALLS``)."""
    for i in range(WARMUP_CALLS):
        assert call(i) == i
    samples = []
    for i in range(n):
        start = time.perf_counter()
        result = call(i)
        samples.append((time.perf_counter() - start) * 1000)
        assert result == i
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[98]


def throughput(fan_out: Callable[[int], list[int]], n: int) -> float:
    """Inputs per second of one ``fan_out(n)``, which must return ``list(range(n))``."""
    start = time.perf_counter()
    results = fan_out(n)
    elapsed = time.perf_counter() - start
    assert results == list(range(n)), "fan-out returned wrong or missing results"
    return n / elapsed


def measure(call: Callable[[int], int], fan_out: Callable[[int], list[int]],
            n_remote: int, n_map: int, repeats: int, label: str) -> Measured:
    """Medians over ``repeats`` of the latency and throughput measurements."""
    p50s, p99s, rates = [], [], []
    for r in range(repeats):
        p50, p99 = latency_ms(call, n_remote)
        p50s.append(p50)
        p99s.append(p99)
        print(f"  {label} remote, repeat {r + 1}/{repeats}: p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
    throughput(fan_out, n_map)  # warm-up
    for r in range(repeats):
        rates.append(throughput(fan_out, n_map))
        print(f"  {label} map, repeat {r + 1}/{repeats}: {rates[-1]:,.0f} inputs/s", flush=True)
    return Measured(statistics.median(p50s), statistics.median(p99s), statistics.median(rates))


class SkiffServer:
    """A ``skiff server`` subprocess on a free port with a scratch ``SKIFF_HOME``."""

    def __init__(self, home: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.home = home
        self.url = f"http://127.0.0.1:{port}"
        self.log = home / "server.log"
        env = dict(os.environ, SKIFF_HOME=str(home), SKIFF_SERVER_URL=self.url)
        env.pop("SKIFF_TOKEN", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "skiff.cli", "server", "start", "--foreground", "--port", str(port)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )

    def wait_healthy(self, timeout: float = 30.0) -> str:
        """Wait until the server answers; return the container runtime it uses."""
        deadline = time.monotonic() + timeout
        while not is_healthy(self.url, timeout=0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"skiff server did not start; its log:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.05)
        with urllib.request.urlopen(self.url + "/v1/health", timeout=5) as resp:
            return json.load(resp)["runtime"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def measure_skiff(n_remote: int, n_map: int, repeats: int) -> tuple[Measured, str]:
    """skiff's numbers, and the name of the container runtime they were measured on."""
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        server = SkiffServer(Path(tmp))
        try:
            runtime = server.wait_healthy()
            print(f"  skiff server runtime: {runtime}", flush=True)
            # skiff reads its settings from the environment when it first talks to a server.
            os.environ.update(SKIFF_HOME=tmp, SKIFF_SERVER_URL=server.url)
            os.environ.pop("SKIFF_TOKEN", None)
            with app.run():
                sk = measure(echo.remote, lambda n: list(echo.map(range(n))), n_remote, n_map, repeats, "skiff")
            return sk, runtime
        finally:
            server.stop()


def measure_ray(n_remote: int, n_map: int, repeats: int) -> Measured:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray_echo = ray.remote(echo.get_raw_f())
        return measure(lambda x: ray.get(ray_echo.remote(x)),
                       lambda n: ray.get([ray_echo.remote(i) for i in range(n)]),
                       n_remote, n_map, repeats, "Ray")
    finally:
        ray.shutdown()


# -- reporting -------------------------------------------------------------------------


def rows(sk: Measured, ray: Measured) -> list[tuple[str, str, str, str, str]]:
    """(metric, skiff, Ray, skiff/Ray, target) for each reported metric."""
    def meets(ok: bool) -> str:
        return "met" if ok else "missed"

    return [
        ("warm remote p50 (ms)", f"{sk.p50_ms:.2f}", f"{ray.p50_ms:.2f}",
         f"{sk.p50_ms / ray.p50_ms:.2f}× (lower is better)",
         f"≤ {TARGET_REMOTE_P50_MS:g} ms: {meets(sk.p50_ms <= TARGET_REMOTE_P50_MS)}"),
        ("warm remote p99 (ms)", f"{sk.p99_ms:.2f}", f"{ray.p99_ms:.2f}",
         f"{sk.p99_ms / ray.p99_ms:.2f}× (lower is better)", "—"),
        ("map throughput (inputs/s)", f"{sk.map_per_s:,.0f}", f"{ray.map_per_s:,.0f}",
         f"{sk.map_per_s / ray.map_per_s:.2f}× (higher is better)",
         f"≥ {TARGET_MAP_PER_S:,.0f}/s: {meets(sk.map_per_s >= TARGET_MAP_PER_S)}"),
    ]


HEADER = ("metric", "skiff", "Ray", "skiff/Ray", "skiff target")


def print_table(table_rows: list[tuple[str, ...]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="skiff vs Ray: trivial function, medians of repeats")
    for i, name in enumerate(HEADER):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in table_rows:
        table.add_row(*row)
    Console(width=max(110, shutil.get_terminal_size().columns)).print(table)  # no wrapped cells


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown")
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal:")))
    return f"{len(os.sched_getaffinity(0))} CPUs ({model}), {mem_kb / 2**20:.1f} GiB memory"


def skiff_commit() -> str:
    """The commit of the checkout skiff is imported from, and where, if not this one (a
    clean worktree keeps the numbers tied to a commit while this tree is being edited)."""
    checkout = Path(skiff.__file__).resolve().parent.parent
    res = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=checkout, capture_output=True, text=True)
    return f"commit {res.stdout.strip() or 'unknown'}" + ("" if checkout == HERE.parent else f", imported from {checkout}")


def versions() -> str:
    import ray

    return (f"Python {platform.python_version()}, skiff {skiff.__version__} "
            f"({skiff_commit()}), Ray {ray.__version__}")


def append_results(table_rows: list[tuple[str, ...]], command: str, software: str,
                   args: argparse.Namespace, runtime: str) -> None:
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nEach section is one run of a script in `bench/`, appended by it.\n")
    lines = [
        "",
        f"## remote_latency — {datetime.now(UTC).strftime('%a %b %d %H:%M:%S UTC %Y')}",
        "",
        f"- machine: {machine()}",
        f"- software: {software}",
        f"- command: `{command}`",
        f"- trivial function `echo(x) -> x`; {args.n_remote} warm sequential remote calls and "
        f"{args.n_map}-input maps, medians of {args.repeats} repeats; skiff server with default "
        f"settings on its `{runtime}` runtime, Ray with `num_cpus=2`, measured one after the other",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|",
        *("| " + " | ".join(row) + " |" for row in table_rows),
    ]
    with open(RESULTS, "a") as f:
        f.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-remote", type=int, default=1000, help="timed .remote() calls per repeat")
    parser.add_argument("--n-map", type=int, default=10000, help="inputs per map")
    parser.add_argument("--repeats", type=int, default=3, help="times each measurement runs")
    args = parser.parse_args()
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    software = versions()  # before measuring: the commit the server runs, not one made meanwhile

    print("skiff:", flush=True)
    sk, runtime = measure_skiff(args.n_remote, args.n_map, args.repeats)
    print("Ray:", flush=True)
    ray = measure_ray(args.n_remote, args.n_map, args.repeats)

    table_rows = rows(sk, ray)
    print_table(table_rows)
    append_results(table_rows, command, software, args, runtime)
    print(f"appended to {os.path.relpath(RESULTS)}")


if __name__ == "__main__":
    main()

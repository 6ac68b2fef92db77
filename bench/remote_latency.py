"""Warm call latency and fan-out throughput of skiff, measured beside Ray on the same machine.

    .venv/bin/python bench/remote_latency.py [--n-remote 1000] [--n-map 10000] [--repeats 3] [--no-record]

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
in a temporary directory whose image layers are the test suite's shared cache; a free
port), measures skiff, stops the server (and with it
every container), and only then starts Ray with ``num_cpus=2`` and measures it, so the
two never compete for the CPUs. It prints a table and appends it, with the date, the
machine, the software versions and the command, to ``bench/RESULTS.md`` (not with
``--no-record``).

``echo`` is defined at module level because a skiff container imports the function's
module by name (this file's stem, ``remote_latency``); everything else runs under
``if __name__ == "__main__"`` so that import does nothing else. The helpers this script
shares with the others are in ``_common.py``, imported only when it runs as a script:
a container has this file alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import skiff

if __name__ == "__main__":  # containers import this file alone, without its neighbours
    from _common import (
        BenchServer,
        append_results,
        command_line,
        machine,
        markdown_table,
        parse_args,
        print_table,
        throughput,
        versions,
    )

app = skiff.App("bench-remote-latency")


@app.function()
def echo(x: int) -> int:
    return x


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


def measure_skiff(n_remote: int, n_map: int, repeats: int) -> tuple[Measured, str]:
    """skiff's numbers, and the name of the container runtime they were measured on."""
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp, BenchServer(Path(tmp)) as server:
        runtime = server.wait_healthy()["runtime"]
        print(f"  skiff server runtime: {runtime}", flush=True)
        server.point_client()
        with app.run():
            sk = measure(echo.remote, lambda n: list(echo.map(range(n))), n_remote, n_map, repeats, "skiff")
        return sk, runtime


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


def ray_versions() -> str:
    import ray

    return versions(f"Ray {ray.__version__}")


def report(table_rows: list[tuple[str, ...]], command: str, software: str,
           args: argparse.Namespace, runtime: str) -> None:
    append_results("remote_latency", machine(linux=False), software, command, [
        f"- trivial function `echo(x) -> x`; {args.n_remote} warm sequential remote calls and "
        f"{args.n_map}-input maps, medians of {args.repeats} repeats; skiff server with default "
        f"settings on its `{runtime}` runtime, Ray with `num_cpus=2`, measured one after the other",
        "",
        *markdown_table(HEADER, table_rows, left_last=False),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-remote", type=int, default=1000, help="timed .remote() calls per repeat")
    parser.add_argument("--n-map", type=int, default=10000, help="inputs per map")
    parser.add_argument("--repeats", type=int, default=3, help="times each measurement runs")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parse_args(parser, n_remote=200, n_map=2000, repeats=1)
    command = command_line()
    software = ray_versions()  # before measuring: the commit the server runs, not one made meanwhile

    print("skiff:", flush=True)
    sk, runtime = measure_skiff(args.n_remote, args.n_map, args.repeats)
    print("Ray:", flush=True)
    ray = measure_ray(args.n_remote, args.n_map, args.repeats)

    table_rows = rows(sk, ray)
    print_table("skiff vs Ray: trivial function, medians of repeats", HEADER, table_rows, 110, left_last=False)
    if not args.no_record:
        report(table_rows, command, software, args, runtime)


if __name__ == "__main__":
    main()

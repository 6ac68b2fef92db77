"""Web endpoint throughput and latency through skiff's gateway, against the same FastAPI
app served directly by uvicorn, and the latency of a request that finds no container.

    .venv/bin/python bench/web.py [--duration 10] [--repeats 3] [--cold-runs 10] [--no-record]

(Run as root: the server uses the ``oci`` runtime. ``scripts/setup-bench`` installs
``wrk``.) What it measures:

- throughput and latency under load: ``wrk -t2 -c16 -d<duration>s --latency URL``
  (Requests/sec and the 50% / 99% lines of its latency distribution) against
  - the gateway, ``http://<server>/webbench/hello``: a ``@skiff.fastapi_endpoint``
    returning ``{"hello": "world"}`` deployed with ``skiff._deploy.deploy_app``, with
    warm containers: one container (``min_containers = max_containers = 1``), two
    containers (both 2), and one container of ``hello_concurrent``, the same function
    under ``@skiff.concurrent(max_inputs=16)``;
  - uvicorn directly: ``uvicorn web:direct_app --factory`` on 127.0.0.1 (one process,
    its default loop and HTTP parser), where ``direct_app`` builds the FastAPI app the
    way skiff's container does (the function as the app's one GET route, no docs); and
    the same with ``--workers 2``, which uses both cores as the gateway and a container
    together do;
  each after a 2 s untimed wrk warm-up, ``--repeats`` times; the run with the median
  Requests/sec is reported (its latency lines with it). Every wrk run must see only 2xx
  responses and no socket errors. The same wrk command with ``-t1 -c1`` (one connection,
  one request at a time) gives the per-request latency floor of each.
- cold request: ``hello`` set to ``min_containers=0`` (``scaledown_window=2``); the script
  waits until the server reports no container for it (``Function.get_current_stats()``
  ``num_total_runners == 0``, then the app's container count, which keeps a stopping
  container until the runtime cleaned it up, at 0), then times one ``GET`` on a new
  connection, from connect to the last byte of the body: the gateway holds the request,
  the server starts a container (image cached), the container imports FastAPI and the
  app, takes the request and streams the response back. One untimed cold request
  first, then ``--cold-runs`` timed ones; p50 / p99.

Targets: the gateway keeps at least 50% of direct uvicorn's throughput (1 container);
a cold request takes at most 500 ms (p50) with the image cached.

How: the script starts its own ``skiff server`` subprocess with ``SKIFF_RUNTIME=oci`` (a
scratch ``SKIFF_HOME`` whose ``images`` links to the test suite's shared layer cache,
``SKIFF_TEST_IMAGE_CACHE`` or /var/tmp/skiff-test-images; a free port), deploys the app
(building its image once per machine), then measures direct uvicorn (started and
stopped around its runs, while the skiff server idles), the gateway configurations
(switched with ``Function.update_autoscaler``; while containers are kept warm their
``scaledown_window`` is 600 s, see ``WARM_SCALEDOWN_S``) and cold requests, one after
the other. Before each measurement it waits until no other ``bench/*.py`` script is
running, since they share the CPUs. It prints a table and appends it, with the date, the machine, the
software versions and the command, to ``bench/RESULTS.md`` (not with ``--no-record``).

The app is defined at module level because a skiff container imports the function's
module by name (this file's stem, ``web``); everything else runs under
``if __name__ == "__main__"`` and imports lazily, so that import stays cheap. The
helpers this script shares with the others are in ``_common.py``, imported only when it
runs as a script: a container has this file alone (and so does ``uvicorn web:direct_app``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import skiff

if __name__ == "__main__":  # containers import this file alone, without its neighbours
    from _common import (
        HERE,
        BenchServer,
        Stats,
        append_results,
        command_line,
        free_port,
        machine,
        markdown_table,
        parse_args,
        print_table,
        versions,
        wait_for_quiet,
    )

app = skiff.App("webbench")
image = skiff.Image.debian_slim().pip_install("fastapi")

CONCURRENT_INPUTS = 16


@app.function(image=image, scaledown_window=2, min_containers=1, max_containers=1)
@skiff.fastapi_endpoint()
def hello() -> dict:
    return {"hello": "world"}


@app.function(image=image, scaledown_window=2, min_containers=0, max_containers=1)
@skiff.concurrent(max_inputs=CONCURRENT_INPUTS)
@skiff.fastapi_endpoint()
def hello_concurrent() -> dict:
    return {"hello": "world"}


def direct_app():
    """The FastAPI app skiff's container builds around ``hello`` (see
    ``skiff._container.web.WebHandler``), for plain uvicorn: ``uvicorn web:direct_app --factory``."""
    from fastapi import FastAPI

    web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    web.add_api_route("/", hello.get_raw_f(), methods=["GET"])
    return web


EXPECTED = {"hello": "world"}
THREADS, CONNECTIONS = 2, 16
WARMUP_S = 2
COLD_SCALEDOWN_S = 2.0
# While containers are kept warm, a long scale-down window: the server's scaling loop spins
# (a busy loop on its event loop) once a container that min_containers keeps has been idle
# longer than scaledown_window, which would take a CPU from whatever is measured.
WARM_SCALEDOWN_S = 600.0

TARGET_FRACTION_OF_DIRECT = 0.5
TARGET_COLD_P50_MS = 500.0


# -- measuring -------------------------------------------------------------------------


@dataclass
class Wrk:
    rps: float
    p50: float  # milliseconds
    p99: float
    requests: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def wrk(url: str, duration: float, threads: int = THREADS, connections: int = CONNECTIONS) -> Wrk:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency", url]
    res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    out = res.stdout
    if res.returncode != 0:
        raise RuntimeError(f"`{shlex.join(cmd)}` failed ({res.returncode}):\n{out}\n{res.stderr}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or (errors and any(int(n) for n in re.findall(r"\d+", errors.group(1)))):
        raise RuntimeError(f"`{shlex.join(cmd)}` saw failed requests:\n{out}")
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
        p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    except AttributeError:
        raise RuntimeError(f"could not read wrk's output:\n{out}") from None
    return Wrk(rps, p50, p99, requests)


def load(label: str, url: str, duration: float, repeats: int, connections: int = CONNECTIONS,
         threads: int = THREADS) -> Wrk:
    """The median-throughput run of ``repeats`` wrk runs, after a warm-up."""
    wait_for_quiet()
    wrk(url, WARMUP_S, threads, connections)
    runs = sorted((wrk(url, duration, threads, connections) for _ in range(repeats)), key=lambda r: r.rps)
    best = runs[len(runs) // 2]
    print(f"  {label}: {best.rps:,.0f} req/s, p50 {best.p50:.2f} ms, p99 {best.p99:.2f} ms "
          f"(req/s over {repeats} runs: {', '.join(f'{r.rps:,.0f}' for r in runs)})", flush=True)
    return best


def get(url: str, timeout: float = 120.0) -> tuple[int, bytes]:
    """One GET on a new connection; (status, body)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def check_answer(url: str) -> None:
    status, body = get(url)
    if status != 200 or json.loads(body) != EXPECTED:
        raise RuntimeError(f"GET {url} answered {status}: {body[:500]!r}")


# -- skiff -----------------------------------------------------------------------------


def runners(fn: skiff.Function) -> int:
    return fn.get_current_stats().num_total_runners


def wait_runners(fn: skiff.Function, n: int, timeout: float = 120.0, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while (have := runners(fn)) != n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the function has {have} container(s), not {n}, after {timeout:g} s")
        time.sleep(poll)


def warm(fn: skiff.Function, url: str, containers: int) -> None:
    """Pin ``fn`` to exactly ``containers`` containers and wait until they all answer."""
    fn.update_autoscaler(min_containers=containers, max_containers=containers, scaledown_window=WARM_SCALEDOWN_S)
    wait_runners(fn, containers)
    check_answer(url)


@dataclass
class GatewayResults:
    one: Wrk
    two: Wrk
    concurrent: Wrk
    floor: Wrk  # one connection, one container
    cold: Stats
    cold_samples: list[float]


def measure_gateway(duration: float, repeats: int, cold_runs: int,
                    direct: Callable[[], DirectResults]) -> tuple[GatewayResults, DirectResults]:
    """The gateway's numbers; ``direct`` (uvicorn's) runs once the app is deployed and warm."""
    from skiff._deploy import deploy_app
    from skiff._sync import run_sync

    with tempfile.TemporaryDirectory(prefix="skiff-bench-web-") as tmp, BenchServer(Path(tmp), runtime="oci") as server:
        health = server.wait_healthy()
        print(f"  skiff server: runtime {health['runtime']}, {server.url}", flush=True)
        server.point_client()
        started = time.perf_counter()
        info = run_sync(deploy_app(app, show_progress=False))
        print(f"  deployed {info['name']} version {info['version']} in {time.perf_counter() - started:.1f} s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(info["urls"].items())), flush=True)
        one = skiff.Function.from_name("webbench", "hello")
        many = skiff.Function.from_name("webbench", "hello_concurrent")
        url, url_concurrent = one.get_web_url(), many.get_web_url()
        for fn in (one, many):
            fn.update_autoscaler(scaledown_window=WARM_SCALEDOWN_S)

        direct_results = direct()  # uvicorn, while this server idles with one warm container

        warm(one, url, 1)
        floor = load("gateway, 1 container, 1 connection", url, duration, repeats, connections=1, threads=1)
        r_one = load(f"gateway, 1 container, {CONNECTIONS} connections", url, duration, repeats)
        warm(one, url, 2)
        r_two = load(f"gateway, 2 containers, {CONNECTIONS} connections", url, duration, repeats)
        one.update_autoscaler(min_containers=0, max_containers=1, scaledown_window=COLD_SCALEDOWN_S)
        warm(many, url_concurrent, 1)
        r_conc = load(f"gateway, 1 container @concurrent(max_inputs={CONCURRENT_INPUTS}), "
                      f"{CONNECTIONS} connections", url_concurrent, duration, repeats)
        many.update_autoscaler(min_containers=0, max_containers=1, scaledown_window=COLD_SCALEDOWN_S)

        samples = []
        wait_for_quiet()
        for i in range(cold_runs + 1):
            wait_runners(one, 0)
            wait_runners(many, 0)
            server.wait_no_containers(app.name)  # type: ignore[arg-type]
            start = time.perf_counter()
            status, body = get(url)
            elapsed = (time.perf_counter() - start) * 1000
            if status != 200 or json.loads(body) != EXPECTED:
                raise RuntimeError(f"cold GET {url} answered {status}: {body[:500]!r}")
            if i:
                samples.append(elapsed)
        cold = Stats.of(samples)
        print(f"  cold request: p50 {cold.p50:.1f} ms, p99 {cold.p99:.1f} ms "
              f"(min {min(samples):.1f}, max {max(samples):.1f}, {cold_runs} runs)", flush=True)
    return GatewayResults(r_one, r_two, r_conc, floor, cold, samples), direct_results


# -- uvicorn directly ------------------------------------------------------------------


@dataclass
class DirectResults:
    load: Wrk
    floor: Wrk
    two_workers: Wrk  # uvicorn --workers 2: both cores, as the gateway and a container use


def measure_direct(duration: float, repeats: int) -> DirectResults:
    load, floor = _measure_uvicorn(duration, repeats, workers=1)
    two_workers, _ = _measure_uvicorn(duration, repeats, workers=2)
    assert floor is not None
    return DirectResults(load, floor, two_workers)


def _measure_uvicorn(duration: float, repeats: int, workers: int) -> tuple[Wrk, Wrk | None]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, "-m", "uvicorn", "web:direct_app", "--factory", "--app-dir", str(HERE),
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                check_answer(url)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"`{shlex.join(cmd)}` did not start") from None
                time.sleep(0.05)
        if workers == 1:
            floor = load("uvicorn, 1 connection", url, duration, repeats, connections=1, threads=1)
        else:
            floor = None
        loaded = load(f"uvicorn --workers {workers}, {CONNECTIONS} connections", url, duration, repeats)
    finally:
        proc.terminate()
        proc.wait(10)
    return loaded, floor


# -- reporting -------------------------------------------------------------------------


HEADER = ("metric", "skiff gateway", "uvicorn direct", "gateway/direct", "target")


def rows(gw: GatewayResults, d: DirectResults) -> list[tuple[str, ...]]:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}×"

    def tput(metric: str, r: Wrk, target: bool) -> tuple[str, ...]:  # against one uvicorn process
        frac = r.rps / d.load.rps
        goal = f"≥ 50% of direct: {'met' if frac >= TARGET_FRACTION_OF_DIRECT else 'missed'}" if target else "—"
        return (metric, f"{r.rps:,.0f}", f"{d.load.rps:,.0f}", ratio(r.rps, d.load.rps), goal)

    def lat(metric: str, ours: float, theirs: float) -> tuple[str, ...]:
        return (metric, f"{ours:.2f}", f"{theirs:.2f}", ratio(ours, theirs), "—")

    c = CONNECTIONS
    cold_ok = "met" if gw.cold.p50 <= TARGET_COLD_P50_MS else "missed"
    return [
        tput(f"throughput, 1 container, {c} connections (req/s)", gw.one, True),
        lat(f"latency p50, 1 container, {c} connections (ms)", gw.one.p50, d.load.p50),
        lat(f"latency p99, 1 container, {c} connections (ms)", gw.one.p99, d.load.p99),
        tput(f"throughput, 2 containers, {c} connections (req/s)", gw.two, False),
        (f"throughput, 2 containers vs uvicorn --workers 2, {c} connections (req/s)", f"{gw.two.rps:,.0f}",
         f"{d.two_workers.rps:,.0f}", ratio(gw.two.rps, d.two_workers.rps), "—"),
        lat(f"latency p50, 2 containers, {c} connections (ms)", gw.two.p50, d.load.p50),
        lat(f"latency p99, 2 containers, {c} connections (ms)", gw.two.p99, d.load.p99),
        tput(f"throughput, 1 container @concurrent({CONCURRENT_INPUTS}), {c} connections (req/s)",
             gw.concurrent, False),
        lat(f"latency p50, 1 container @concurrent({CONCURRENT_INPUTS}), {c} connections (ms)",
            gw.concurrent.p50, d.load.p50),
        lat(f"latency p99, 1 container @concurrent({CONCURRENT_INPUTS}), {c} connections (ms)",
            gw.concurrent.p99, d.load.p99),
        lat("latency p50, 1 connection (ms)", gw.floor.p50, d.floor.p50),
        lat("latency p99, 1 connection (ms)", gw.floor.p99, d.floor.p99),
        ("cold request p50, image cached (ms)", f"{gw.cold.p50:.1f}", "—", "—", f"≤ 500 ms: {cold_ok}"),
        ("cold request p99, image cached (ms)", f"{gw.cold.p99:.1f}", "—", "—", "—"),
    ]


def software() -> str:
    from importlib.metadata import version

    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    wrk_line = (wrk_version.stdout + wrk_version.stderr).strip().splitlines()[0].split(" [")[0]
    return versions(f"uvicorn {version('uvicorn')}", f"fastapi {version('fastapi')} (direct; the container's image "
                    "pip-installs the newest)", wrk_line)


def report(table_rows: list[tuple[str, ...]], command: str, args: argparse.Namespace,
           gw: GatewayResults, load_avg: tuple[float, float]) -> None:
    append_results("web", machine(), software(), command, [
        f"- a `@skiff.fastapi_endpoint` returning `{{\"hello\": \"world\"}}` through the gateway of a skiff server on "
        f"its `oci` runtime (warm containers pinned with `min_containers = max_containers`), vs the same FastAPI "
        f"app under `uvicorn --factory` on 127.0.0.1 (one process); load: `wrk -t{THREADS} -c{CONNECTIONS} "
        f"-d{args.duration:g}s --latency`, 1-connection rows `wrk -t1 -c1`, each the median-throughput run of "
        f"{args.repeats} after a {WARMUP_S} s warm-up, wrk on the same machine; cold request: one GET on a new "
        f"connection with no container (`min_containers=0`, image cached), {args.cold_runs} runs "
        f"(samples, ms: {', '.join(f'{s:.0f}' for s in gw.cold_samples)})",
        "",
        *markdown_table(HEADER, table_rows),
    ], command_note=f"; 1-minute load average {load_avg[0]:.2f} at the start, {load_avg[1]:.2f} at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="wrk runs per configuration (the median is kept)")
    parser.add_argument("--cold-runs", type=int, default=10, help="timed cold requests")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parse_args(parser, duration=1.0, repeats=1, cold_runs=2)
    if args.repeats < 1 or args.cold_runs < 2:
        parser.error("--repeats must be at least 1 and --cold-runs at least 2")
    if os.geteuid() != 0:
        parser.error("run as root: the oci runtime needs it")
    if shutil.which("wrk") is None:
        parser.error("wrk is missing; scripts/setup-bench installs it")
    command = command_line()
    load_before = os.getloadavg()[0]

    print("skiff gateway (server on the oci runtime) and uvicorn directly:", flush=True)
    gw, direct = measure_gateway(args.duration, args.repeats, args.cold_runs,
                                 lambda: measure_direct(args.duration, args.repeats))
    table_rows = rows(gw, direct)
    print_table("skiff web gateway vs uvicorn directly: hello-world FastAPI endpoint", HEADER, table_rows, 160)
    if not args.no_record:
        report(table_rows, command, args, gw, (load_before, os.getloadavg()[0]))


if __name__ == "__main__":
    main()

"""``.map`` throughput with a pinned number of containers, and the memory a big map costs,
measured beside Ray on the same machine.

    .venv/bin/python bench/map_throughput.py [--n-trivial 20000] [--n-cpu 400] [--n-memory 100000] [--repeats 3] [--no-record]

What it measures, for two functions:

- ``trivial(x) -> x``, and
- ``cpu_20ms(x) -> x``, which first burns 20 ms of *CPU time* in a busy loop (timed with
  ``time.thread_time()``, not the wall clock, so a process that waits for a core still
  does its full 20 ms of work; a wall-clock loop would let four containers on two cores
  look twice as fast as they are):

- map throughput with exactly 1, 2 and 4 containers: inputs per second of
  ``list(f.map(range(n)))`` with ``--n-trivial`` trivial or ``--n-cpu`` CPU-bound inputs.
  The container count is pinned with ``f.update_autoscaler(min_containers=N,
  max_containers=N, scaledown_window=1)``, and the script waits until
  ``f.get_current_stats().num_total_runners == N`` (and then for one untimed warm-up
  map of a tenth of the inputs) before timing. Ray's column is ``ray.get([f.remote(i)
  for i in range(n)])`` after ``ray.init(num_cpus=N)`` (a fresh Ray per N, so it runs at
  most N tasks at once, in N workers), with the same warm-up.
- memory during one ``--n-memory``-input trivial map with 2 containers (Ray:
  ``num_cpus=2``): the resident set size (VmRSS in ``/proc/<pid>/status``) of the client
  process (Ray: the driver) and of the server process (Ray: its raylet plus GCS server,
  the driver's child processes, summed), sampled by a thread every 50 ms, combined with
  the kernel's own peak (VmHWM, reset through ``/proc/<pid>/clear_refs`` just before the
  map) so a short spike between samples is not missed. Baseline is the RSS just before
  the map, after a warm-up map; growth is peak minus baseline. Both clients keep the full
  result list, as ``list(...)`` and ``ray.get([...])`` do. The memory map runs first,
  on a server that has done nothing but a 1,000-input warm-up, so earlier maps have not
  grown its heap already.

Each throughput measurement runs ``--repeats`` times; the median is reported.

How: the script starts its own ``skiff server`` subprocess with default settings (so
the runtime is whichever the server picks, and the report names it; a scratch
``SKIFF_HOME`` in a temporary directory whose ``images`` links to the test suite's
shared layer cache, ``SKIFF_TEST_IMAGE_CACHE`` or /var/tmp/skiff-test-images, so the
default image is built once per machine; a free port), measures skiff, stops the server
(and with it every container), and only then starts Ray, so the two never compete for
the CPUs. It prints a table with the targets (trivial map ≥ 5,000 inputs/s and at least
Ray's, at each container count; CPU-bound map with 2 containers ≥ 1.7× one container;
server memory growth under 200 MB for the 100,000-input map) and appends it, with the
date, the machine, the software versions and the command, to ``bench/RESULTS.md`` (not
with ``--no-record``).

``trivial`` and ``cpu_20ms`` are defined at module level because a skiff container
imports the function's module by name (this file's stem, ``map_throughput``);
everything else runs under ``if __name__ == "__main__"`` so that import does nothing else.
The helpers this script shares with the others are in ``_common.py``, imported only when
it runs as a script: a container has this file alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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

app = skiff.App("bench-map-throughput")

CPU_SECONDS = 0.020


@app.function()
def trivial(x: int) -> int:
    return x


@app.function()
def cpu_20ms(x: int) -> int:
    end = time.thread_time() + CPU_SECONDS
    while time.thread_time() < end:
        pass
    return x


CONTAINER_COUNTS = (1, 2, 4)
MEMORY_CONTAINERS = 2
MEMORY_WARMUP = 1000
SAMPLE_EVERY = 0.05  # seconds between RSS samples

TARGET_TRIVIAL_PER_S = 5000.0
TARGET_CPU_SPEEDUP_2 = 1.7
TARGET_SERVER_GROWTH_MB = 200.0


# -- measuring -------------------------------------------------------------------------


FanOut = Callable[[int], list[int]]


def median_throughput(fan_out: FanOut, n: int, repeats: int, label: str) -> float:
    """The median of ``repeats`` timed runs, after one untimed warm-up of ``n // 10``."""
    throughput(fan_out, max(1, n // 10))
    rates = []
    for r in range(repeats):
        rates.append(throughput(fan_out, n))
        print(f"  {label}, repeat {r + 1}/{repeats}: {rates[-1]:,.0f} inputs/s", flush=True)
    return statistics.median(rates)


def rss_kb(pid: int, field_name: str = "VmRSS") -> int:
    """A ``/proc/<pid>/status`` memory field in kB (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def reset_peak(pid: int) -> bool:
    """Reset the kernel's peak RSS (VmHWM) of ``pid`` to its current RSS."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Samples the summed VmRSS of each group of pids every ``SAMPLE_EVERY`` seconds,
    from a thread, between ``start()`` and ``stop()``."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.baseline = {name: sum(rss_kb(p) for p in pids) for name, pids in groups.items()}
        self.peak = dict(self.baseline)
        self.hwm_reset = all(reset_peak(p) for pids in groups.values() for p in pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        for name, pids in self.groups.items():
            self.peak[name] = max(self.peak[name], sum(rss_kb(p) for p in pids))

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self._sample()

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> dict[str, Memory]:
        self._stop.set()
        self._thread.join()
        self._sample()
        out = {}
        for name, pids in self.groups.items():
            peak = self.peak[name]
            if self.hwm_reset:  # the kernel's peak per process; summed, an upper bound for a group
                peak = max(peak, sum(rss_kb(p, "VmHWM") for p in pids))
            out[name] = Memory(self.baseline[name] * 1024 / 1e6, peak * 1024 / 1e6)
        return out


@dataclass
class Memory:
    baseline_mb: float  # MB = 10^6 bytes
    peak_mb: float

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.baseline_mb

    def cell(self) -> str:
        return f"{self.baseline_mb:,.0f} → {self.peak_mb:,.0f} (+{self.growth_mb:,.0f})"


@dataclass
class Measured:
    """One system's numbers: throughput by (workload, containers), and memory."""

    rates: dict[tuple[str, int], float] = field(default_factory=dict)
    memory_rate: float = 0.0
    client: Memory | None = None
    server: Memory | None = None


def measure_memory(fan_out: FanOut, n: int, server_pids: list[int], label: str) -> tuple[Memory, Memory, float]:
    """(client memory, server memory, inputs/s) of one ``fan_out(n)``, after a warm-up."""
    throughput(fan_out, MEMORY_WARMUP)
    sampler = RssSampler({"client": [os.getpid()], "server": server_pids}).start()
    try:
        rate = throughput(fan_out, n)
    finally:
        mem = sampler.stop()
    print(f"  {label} {n:,}-input map: {rate:,.0f} inputs/s; RSS MB (baseline → peak): "
          f"client {mem['client'].cell()}, server {mem['server'].cell()}", flush=True)
    return mem["client"], mem["server"], rate


# -- skiff -----------------------------------------------------------------------------


def pin_containers(fn: skiff.Function, n: int, timeout: float = 120.0) -> None:
    """Give ``fn`` exactly ``n`` containers and wait until the server reports them."""
    fn.update_autoscaler(min_containers=n, max_containers=n, scaledown_window=1)
    deadline = time.monotonic() + timeout
    while (runners := fn.get_current_stats().num_total_runners) != n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{fn.tag} has {runners} containers after {timeout:g} s, not {n}")
        time.sleep(0.05)


def measure_skiff(args: argparse.Namespace) -> tuple[Measured, str]:
    """skiff's numbers, and the name of the container runtime they were measured on."""
    out = Measured()
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp, BenchServer(Path(tmp)) as server:
        runtime = server.wait_healthy()["runtime"]
        print(f"  skiff server: runtime {runtime}, {server.url}, pid {server.proc.pid}", flush=True)
        server.point_client()
        with app.run(show_logs=False, show_progress=False):
            fan_outs = {"trivial": (trivial, lambda n: list(trivial.map(range(n)))),
                        "cpu": (cpu_20ms, lambda n: list(cpu_20ms.map(range(n))))}
            pin_containers(trivial, MEMORY_CONTAINERS)
            out.client, out.server, out.memory_rate = measure_memory(
                fan_outs["trivial"][1], args.n_memory, [server.proc.pid], "skiff")
            for workload, n in (("trivial", args.n_trivial), ("cpu", args.n_cpu)):
                fn, fan_out = fan_outs[workload]
                for count in CONTAINER_COUNTS:
                    pin_containers(fn, count)
                    out.rates[workload, count] = median_throughput(
                        fan_out, n, args.repeats, f"skiff {workload}, {count} container(s)")
                fn.update_autoscaler(min_containers=0, max_containers=1)  # make room for the next
        return out, runtime


# -- Ray -------------------------------------------------------------------------------


def ray_control_plane_pids() -> list[int]:
    """The raylet and GCS server that ``ray.init()`` started as this process's children."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            comm = text[text.index("(") + 1:text.rindex(")")]
            ppid = int(text[text.rindex(")") + 2:].split()[1])
            if ppid == os.getpid() and comm in ("raylet", "gcs_server"):
                pids.append(int(stat.parent.name))
    return pids


def measure_ray(args: argparse.Namespace) -> Measured:
    import ray

    out = Measured()
    raw = {"trivial": trivial.get_raw_f(), "cpu": cpu_20ms.get_raw_f()}
    for count in CONTAINER_COUNTS:
        ray.init(num_cpus=count, include_dashboard=False, log_to_driver=False)
        try:
            remote = {name: ray.remote(f) for name, f in raw.items()}
            fan_outs = {name: (lambda n, r=r: ray.get([r.remote(i) for i in range(n)])) for name, r in remote.items()}
            if count == MEMORY_CONTAINERS:
                pids = ray_control_plane_pids()
                if len(pids) != 2:
                    raise RuntimeError(f"expected Ray's raylet and gcs_server among this process's children, found {pids}")
                out.client, out.server, out.memory_rate = measure_memory(fan_outs["trivial"], args.n_memory, pids, "Ray")
            for workload, n in (("trivial", args.n_trivial), ("cpu", args.n_cpu)):
                out.rates[workload, count] = median_throughput(
                    fan_outs[workload], n, args.repeats, f"Ray {workload}, num_cpus={count}")
        finally:
            ray.shutdown()
    return out


# -- reporting -------------------------------------------------------------------------


HEADER = ("metric", "skiff", "Ray", "skiff/Ray", "skiff target")


def rows(sk: Measured, ray: Measured, n_memory: int) -> list[tuple[str, ...]]:
    """(metric, skiff, Ray, skiff/Ray, target) for each reported metric."""
    def meets(ok: bool) -> str:
        return "met" if ok else "missed"

    def plural(n: int) -> str:
        return f"{n} container{'s' if n > 1 else ''}"

    out: list[tuple[str, ...]] = []
    for count in CONTAINER_COUNTS:
        s, r = sk.rates["trivial", count], ray.rates["trivial", count]
        out.append((f"trivial map, {plural(count)} (inputs/s)", f"{s:,.0f}", f"{r:,.0f}", f"{s / r:.2f}×",
                    f"≥ {TARGET_TRIVIAL_PER_S:,.0f}/s and ≥ Ray: {meets(s >= TARGET_TRIVIAL_PER_S and s >= r)}"))
    for count in CONTAINER_COUNTS:
        s, r = sk.rates["cpu", count], ray.rates["cpu", count]
        out.append((f"20 ms CPU map, {plural(count)} (inputs/s)", f"{s:,.1f}", f"{r:,.1f}", f"{s / r:.2f}×", "—"))
    for count in CONTAINER_COUNTS[1:]:
        s = sk.rates["cpu", count] / sk.rates["cpu", 1]
        r = ray.rates["cpu", count] / ray.rates["cpu", 1]
        target = f"≥ {TARGET_CPU_SPEEDUP_2:g}×: {meets(s >= TARGET_CPU_SPEEDUP_2)}" if count == 2 else "—"
        out.append((f"20 ms CPU map speed-up, {count} vs 1 container", f"{s:.2f}×", f"{r:.2f}×", f"{s / r:.2f}×", target))
    assert sk.client and sk.server and ray.client and ray.server
    m = MEMORY_CONTAINERS
    out += [
        (f"{n_memory:,}-input trivial map, {plural(m)} (inputs/s)", f"{sk.memory_rate:,.0f}",
         f"{ray.memory_rate:,.0f}", f"{sk.memory_rate / ray.memory_rate:.2f}×", "—"),
        ("  client RSS, MB: baseline → peak (growth)", sk.client.cell(), ray.client.cell(),
         f"{sk.client.growth_mb / ray.client.growth_mb:.2f}× growth" if ray.client.growth_mb > 0 else "—", "—"),
        ("  server RSS, MB: baseline → peak (growth)", sk.server.cell(), ray.server.cell(),
         f"{sk.server.growth_mb / ray.server.growth_mb:.2f}× growth" if ray.server.growth_mb > 0 else "—",
         f"growth < {TARGET_SERVER_GROWTH_MB:g} MB: {meets(sk.server.growth_mb < TARGET_SERVER_GROWTH_MB)}"),
    ]
    return out


def ray_versions() -> str:
    import ray

    return versions(f"Ray {ray.__version__}")


def report(table_rows: list[tuple[str, ...]], command: str, software: str,
           args: argparse.Namespace, runtime: str) -> None:
    append_results("map_throughput", machine(), software, command, [
        f"- `trivial(x) -> x` over {args.n_trivial:,} inputs and `cpu_20ms(x)` (a busy loop of 20 ms of "
        f"CPU time) over {args.n_cpu:,} inputs, `list(f.map(range(n)))`, medians of {args.repeats} repeats "
        f"after a warm-up; skiff server with default settings on its `{runtime}` runtime, containers "
        f"pinned with `min_containers=max_containers=N`; Ray `ray.get([f.remote(i) ...])` with "
        f"`ray.init(num_cpus=N)`, a fresh Ray per N; measured one after the other",
        f"- memory: one {args.n_memory:,}-input trivial map with {MEMORY_CONTAINERS} containers "
        f"(Ray `num_cpus={MEMORY_CONTAINERS}`), after a {MEMORY_WARMUP:,}-input warm-up; VmRSS sampled "
        f"every {SAMPLE_EVERY * 1000:.0f} ms and VmHWM reset before the map; client = this process "
        f"(Ray's driver), server = the skiff server process (Ray: raylet + gcs_server, summed); MB = 10^6 bytes",
        "",
        *markdown_table(HEADER, table_rows),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-trivial", type=int, default=20000, help="inputs per trivial map")
    parser.add_argument("--n-cpu", type=int, default=400, help="inputs per CPU-bound map")
    parser.add_argument("--n-memory", type=int, default=100000, help="inputs of the map whose memory is measured")
    parser.add_argument("--repeats", type=int, default=3, help="times each throughput measurement runs")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parse_args(parser, n_trivial=1000, n_cpu=100, n_memory=2000, repeats=1)
    command = command_line()
    software = ray_versions()  # before measuring: the commit the server runs, not one made meanwhile

    print("skiff:", flush=True)
    sk, runtime = measure_skiff(args)
    print("Ray:", flush=True)
    ray = measure_ray(args)

    table_rows = rows(sk, ray, args.n_memory)
    print_table("skiff vs Ray: .map throughput by container count, and memory of a big map", HEADER, table_rows, 150)
    if not args.no_record:
        report(table_rows, command, software, args, runtime)


if __name__ == "__main__":
    main()

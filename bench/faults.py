"""Faults: what a map loses, duplicates or gets wrong while its containers are killed or
its server is, and how concurrent callers fare.

    .venv/bin/python bench/faults.py [--n 2000] [--clients 20] [--calls 200] [--no-record]

What it runs, on a server of its own (default settings, a scratch ``SKIFF_HOME`` whose
image layers are the test suite's shared cache, a free port):

- a ``--n``-input map of ``double(x) -> 2 * x`` (retries allowed, ``order_outputs=False``
  so every output the client receives is counted, duplicates included), three times:
  with no faults (the baseline), while every container of the function is killed with
  SIGKILL every 0.5 s (the first round after 0.25 s), and while the server itself is
  killed with SIGKILL once, when a third of the outputs have arrived, and started again
  on the same home and port;
- ``--clients`` client processes, each making ``--calls`` sequential ``.remote()`` calls
  of a deployed function, all at once: calls per second overall and the p50/p99 of each
  call's round trip.

For each map it reports the outputs lost (an input with no output), duplicated (an input
with more than one) and wrong, and its time relative to the baseline. Target: 0 lost and
0 duplicated under both kinds of fault.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import skiff

app = skiff.App("faults-bench")


@app.function(retries=skiff.Retries(max_retries=10, initial_delay=0.0, max_delay=1.0), max_containers=2)
def double(x: int) -> int:
    return 2 * x


CLIENT = """
import json, sys, time
import skiff
fn = skiff.Function.from_name("faults-bench", "double")
fn.remote(0)
samples = []
for i in range(int(sys.argv[1])):
    started = time.perf_counter()
    assert fn.remote(i) == 2 * i
    samples.append((time.perf_counter() - started) * 1000)
print(json.dumps(samples))
"""


def container_pids(function_id: str) -> list[int]:
    marker = f"SKIFF_FUNCTION_ID={function_id}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def judged(outputs: list[int], n: int) -> tuple[int, int, int]:
    """(lost, duplicated, wrong) among the outputs of a map of ``double`` over range(n)."""
    counts = Counter(outputs)
    wrong = sum(c for v, c in counts.items() if v % 2 or not 0 <= v // 2 < n)
    lost = sum(1 for i in range(n) if counts[2 * i] == 0)
    duplicated = sum(c - 1 for v, c in counts.items() if c > 1 and v % 2 == 0)
    return lost, duplicated, wrong


def timed_map(n: int, outputs: list[int] | None = None) -> tuple[float, list[int]]:
    """Seconds a map took, and its outputs (appended to ``outputs`` as they arrive)."""
    outputs = [] if outputs is None else outputs
    started = time.perf_counter()
    for value in double.map(range(n), order_outputs=False):
        outputs.append(value)
    return time.perf_counter() - started, outputs


def restart(server: BenchServer) -> None:
    """Kill the server with SIGKILL and start it again on the same home and port."""
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    port = server.url.rsplit(":", 1)[1]
    with open(server.log, "ab") as log:
        server.proc = subprocess.Popen(
            [sys.executable, "-m", "skiff.cli", "server", "start", "--foreground", "--port", port],
            env=server.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
    server.wait_healthy(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="inputs per map")
    parser.add_argument("--clients", type=int, default=20, help="concurrent client processes")
    parser.add_argument("--calls", type=int, default=200, help=".remote() calls per client")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parse_args(parser, clients=4, calls=25)
    wait_for_quiet()
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(prefix="skiff-bench-faults-") as tmp, BenchServer(Path(tmp)) as server:
        runtime = server.wait_healthy()["runtime"]
        server.point_client()
        print(f"skiff server runtime: {runtime}")
        with app.run(show_logs=False):
            double.map(range(100))  # warm: the image, a container
            base, outputs = timed_map(args.n)
            rows.append(("no faults", *map(str, judged(outputs, args.n)), f"{base:.2f}", "1.00×"))
            print(f"  no faults: {base:.2f} s")

            assert double.object_id is not None
            stop = threading.Event()
            kills = 0

            def killer() -> None:
                nonlocal kills
                wait = 0.25  # the first round early, so a short map sees one too; then every 0.5 s
                while not stop.wait(wait):
                    wait = 0.5
                    for pid in container_pids(double.object_id or ""):
                        try:
                            os.kill(pid, signal.SIGKILL)
                            kills += 1
                        except ProcessLookupError:
                            pass

            thread = threading.Thread(target=killer, daemon=True)
            thread.start()
            took, outputs = timed_map(args.n)
            stop.set()
            thread.join()
            rows.append((f"containers killed every 0.5 s ({kills} processes)", *map(str, judged(outputs, args.n)),
                         f"{took:.2f}", f"{took / base:.2f}×"))
            print(f"  container kills: {took:.2f} s, {kills} processes killed")

            received: list[int] = []
            took = float("nan")

            def mapper() -> None:
                nonlocal took
                took, _ = timed_map(args.n, received)

            thread = threading.Thread(target=mapper)
            thread.start()
            while len(received) < args.n // 3 and thread.is_alive():  # a third of the way through
                time.sleep(0.005)
            at = len(received)
            restart(server)
            thread.join(600)
            outputs = received
            rows.append((f"server killed (SIGKILL) after {at} outputs, restarted", *map(str, judged(outputs, args.n)),
                         f"{took:.2f}", f"{took / base:.2f}×"))
            print(f"  server kill after {at} outputs: {took:.2f} s")

        # Concurrent callers of a deployed function.
        from skiff._deploy import deploy_app
        from skiff._sync import run_sync

        run_sync(deploy_app(app, show_progress=False))
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", CLIENT, str(args.calls)], env=server.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(args.clients)]
        samples: list[float] = []
        failed = 0
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                failed += 1
                print(err[-2000:], file=sys.stderr)
            else:
                samples += json.loads(out.strip().splitlines()[-1])
        elapsed = time.perf_counter() - started
        stats = Stats.of(samples) if samples else Stats(p50=float("nan"), p99=float("nan"))
        concurrency = (f"{args.clients} clients × {args.calls} `.remote()`: {len(samples) / elapsed:,.0f} calls/s "
                       f"(process start-up included), p50 {stats.p50:.1f} ms, p99 {stats.p99:.1f} ms, "
                       f"{failed} client(s) failed")
        print(concurrency)

    header = ("map of --n inputs", "lost", "duplicated", "wrong", "time (s)", "vs no faults")
    print_table(f"faults: {args.n}-input map, runtime {runtime}", header, rows, 110, left_last=False)
    if not args.no_record:
        body = [f"- runtime: {runtime}; `double` allows 10 retries; maps use `order_outputs=False`, so every output "
                "received is counted", "", *markdown_table(header, rows, left_last=False), "", f"- {concurrency}"]
        append_results("faults", machine(), versions(), command_line(), body)


if __name__ == "__main__":  # containers import this file alone, without its neighbours
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import (
        BenchServer,
        Stats,
        append_results,
        command_line,
        machine,
        markdown_table,
        parse_args,
        print_table,
        versions,
        wait_for_quiet,
    )

    main()

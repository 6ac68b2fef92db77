"""Helpers shared by the benchmark scripts in ``bench/``: a scratch ``skiff server``
subprocess, percentiles and throughput, the machine and software lines of a report, its
rich table, and the dated section each script appends to ``bench/RESULTS.md``.

Only the scripts' main sections import this module, under ``if __name__ == "__main__"``:
a skiff container imports a script by its file stem with that one file mounted, so this
file is not there beside it.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import skiff

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
IMAGE_CACHE = Path(os.environ.get("SKIFF_TEST_IMAGE_CACHE", "/var/tmp/skiff-test-images"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the server ------------------------------------------------------------------------


class BenchServer:
    """A ``skiff server`` subprocess on a free port with ``home`` as its scratch ``SKIFF_HOME``.

    ``runtime`` sets ``SKIFF_RUNTIME`` (None leaves the choice to the server) and then
    ``wait_healthy`` checks the server runs it. The home's ``images`` links to the test
    suite's shared layer cache (``SKIFF_TEST_IMAGE_CACHE`` or
    /var/tmp/skiff-test-images), so an image is built once per machine. As a context
    manager it stops the server on the way out.
    """

    def __init__(self, home: Path, runtime: str | None = None) -> None:
        port = free_port()
        self.home = home
        self.runtime = runtime
        IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
        (home / "images").symlink_to(IMAGE_CACHE)
        self.url = f"http://127.0.0.1:{port}"
        self.log = home / "server.log"
        self.env = dict(os.environ, SKIFF_HOME=str(home), SKIFF_SERVER_URL=self.url)
        if runtime is not None:
            self.env["SKIFF_RUNTIME"] = runtime
        self.env.pop("SKIFF_TOKEN", None)
        self.env.pop("SKIFF_GATEWAY_URL", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "skiff.cli", "server", "start", "--foreground", "--port", str(port)],
                env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )

    def __enter__(self) -> BenchServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_healthy(self, timeout: float = 30.0) -> dict:
        """Wait until the server answers; return its ``/v1/health`` (``runtime`` names the
        container runtime it uses)."""
        from skiff._local_server import is_healthy

        deadline = time.monotonic() + timeout
        while not is_healthy(self.url, timeout=0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"skiff server did not start; its log:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.05)
        with urllib.request.urlopen(self.url + "/v1/health", timeout=5) as resp:
            health = json.load(resp)
        if self.runtime is not None and health.get("runtime") != self.runtime:
            raise RuntimeError(f"the server runs the {health.get('runtime')!r} runtime, not {self.runtime!r}; "
                               f"its log:\n{self.log.read_text(errors='replace')}")
        return health

    def point_client(self) -> None:
        """Point this process's skiff client at the server: skiff reads its settings from
        the environment when it first talks to a server."""
        os.environ.update(SKIFF_HOME=str(self.home), SKIFF_SERVER_URL=self.url)
        os.environ.pop("SKIFF_TOKEN", None)
        os.environ.pop("SKIFF_GATEWAY_URL", None)

    def get(self, path: str) -> dict | list:
        token = (self.home / "token").read_text().strip()
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def wait_no_containers(self, app: str, timeout: float = 60.0, poll: float = 0.02) -> None:
        """Until the app (its id or name) has no container at all, stopping ones included
        (the server reports a container until the runtime has cleaned it up)."""
        deadline = time.monotonic() + timeout
        while (have := sum(a["containers"] for a in self.get(f"/v1/apps/{app}"))) != 0:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise RuntimeError(f"app {app} still has {have} container(s) after {timeout:g} s")
            time.sleep(poll)

    def cli(self, *args: str) -> list[str]:
        """The command line of ``skiff <args>`` (run it with ``env=self.env``)."""
        return [sys.executable, "-m", "skiff.cli", *args]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def parse_args(parser: argparse.ArgumentParser, **quick: Any) -> argparse.Namespace:
    """The script's arguments, with ``--quick``: the sizes in ``quick`` (a run of seconds,
    to see that a change did not slow the hot path; its numbers are rough and are not
    recorded)."""
    parser.add_argument("--quick", action="store_true",
                        help="a short run with small sizes, to check for regressions (not recorded)")
    args = parser.parse_args()
    if args.quick:
        for name, value in quick.items():
            setattr(args, name, value)
        args.no_record = True
    return args


def wait_for_quiet() -> None:
    """Wait while another bench script runs: this machine's CPUs are shared."""
    me = Path(sys.argv[0]).stem
    others = sorted(p.stem for p in HERE.glob("*.py") if not p.name.startswith("_") and p.stem != me)
    pattern = rf"bench/({'|'.join(others)})\.py"
    said = False
    while subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0:
        if not said:
            print("  (waiting for another bench script to finish)", flush=True)
            said = True
        time.sleep(2)


# -- measuring -------------------------------------------------------------------------


@dataclass
class Stats:
    p50: float  # milliseconds
    p99: float

    @classmethod
    def of(cls, samples_ms: list[float]) -> Stats:
        cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
        return cls(p50=statistics.median(samples_ms), p99=cuts[98])


def throughput(fan_out: Callable[[int], list[int]], n: int) -> float:
    """Inputs per second of one ``fan_out(n)``, which must return ``list(range(n))``."""
    start = time.perf_counter()
    results = fan_out(n)
    elapsed = time.perf_counter() - start
    assert results == list(range(n)), "fan-out returned wrong or missing results"
    return n / elapsed


# -- reporting -------------------------------------------------------------------------


def _left(i: int, header: Sequence[str], left_last: bool) -> bool:
    return i == 0 or (left_last and i == len(header) - 1)


def print_table(title: str, header: Sequence[str], rows: list[tuple[str, ...]], width: int,
                left_last: bool = True) -> None:
    """A rich table at least ``width`` columns wide (no wrapped cells); the first column,
    and the last with ``left_last``, left-aligned, the others right-aligned."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if _left(i, header, left_last) else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=max(width, shutil.get_terminal_size().columns)).print(table)


def markdown_table(header: Sequence[str], rows: list[tuple[str, ...]], left_last: bool = True) -> list[str]:
    """The lines of a Markdown table, aligned as ``print_table`` aligns it."""
    aligns = ["---" if _left(i, header, left_last) else "---:" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]


def machine(*, linux: bool = True, cgroup: bool = False, tmp_disk: bool = False) -> str:
    """CPUs and memory; with ``linux`` the kernel release, with ``cgroup`` the cgroup
    version, with ``tmp_disk`` the device and file system of the temporary directory."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown")
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal:")))
    parts = [f"{len(os.sched_getaffinity(0))} CPUs ({model})", f"{mem_kb / 2**20:.1f} GiB memory"]
    if linux:
        parts.append(f"Linux {platform.release()}")
    if cgroup:
        parts.append(f"cgroup v{1 if not Path('/sys/fs/cgroup/cgroup.controllers').exists() else 2}")
    if tmp_disk:
        fs = subprocess.run(["df", "--output=source,fstype", tempfile.gettempdir()], capture_output=True, text=True)
        disk = " ".join(fs.stdout.split()[2:4]) if fs.returncode == 0 else "unknown"
        parts.append(f"{tempfile.gettempdir()} on {disk}")
    return ", ".join(parts)


def skiff_commit() -> str:
    """The commit of the checkout skiff is imported from, and where, if not this one (a
    clean worktree keeps the numbers tied to a commit while this tree is being edited)."""
    checkout = Path(skiff.__file__).resolve().parent.parent
    res = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=checkout, capture_output=True, text=True)
    return f"commit {res.stdout.strip() or 'unknown'}" + ("" if checkout == HERE.parent else f", imported from {checkout}")


def versions(*more: str) -> str:
    """Python's and skiff's versions (with ``skiff_commit()``), then ``more``."""
    return ", ".join([f"Python {platform.python_version()}", f"skiff {skiff.__version__} ({skiff_commit()})", *more])


def command_line() -> str:
    """How this script was started, for the report."""
    return shlex.join([os.path.relpath(sys.executable), *sys.argv])


def append_results(script: str, host: str, software: str, command: str, body: list[str],
                   command_note: str = "") -> None:
    """Append to ``bench/RESULTS.md`` (made with its heading if missing) a section headed
    with ``script`` and the date, then its machine, software and command lines (the command
    followed by ``command_note``), then ``body``; and say so."""
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nEach section is one run of a script in `bench/`, appended by it.\n")
    lines = [
        "",
        f"## {script} — {datetime.now(UTC).strftime('%a %b %d %H:%M:%S UTC %Y')}",
        "",
        f"- machine: {host}",
        f"- software: {software}",
        f"- command: `{command}`{command_note}",
        *body,
    ]
    with open(RESULTS, "a") as f:
        f.write("\n".join(lines) + "\n")
    print(f"appended to {os.path.relpath(RESULTS)}")

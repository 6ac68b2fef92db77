"""Volume transfer throughput against a plain file copy, and how long a container takes
to see a committed 1,000-file tree.

    .venv/bin/python bench/volume.py [--size-mib 1024] [--files 1000] [--repeats 3] [--no-record]

(Run as root: volumes need the ``oci`` runtime.) What it measures:

- put / get throughput: ``skiff volume put bench-io FILE /big.bin`` and ``skiff volume
  get bench-io /big.bin OUT`` of a ``--size-mib`` file of random bytes (1 GiB by default,
  written with ``os.urandom`` chunks in a temporary directory on the same file system as
  the server's ``SKIFF_HOME``), each a fresh CLI process timed from start to exit, in
  MB/s (10^6 bytes per second). Beside them, on the same disk: ``shutil.copyfile`` of
  the same file (in this process) and ``cp`` (a subprocess). The CLI and ``cp`` run
  under ``/usr/bin/time -v`` where it exists, for their peak RSS ("Maximum resident set
  size"; without it, ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``, which is the
  largest of all children so far); the server's peak RSS growth during each transfer is
  read from its VmHWM, reset through ``/proc/<pid>/clear_refs`` before the transfer. Each
  repeat deletes and recreates the volume, so every put uploads the whole file (the
  server keeps a blob it already has, and the CLI would skip it). ``os.sync()`` runs
  before each timed transfer, so writeback of an earlier one does not slow it down; none
  of them syncs its own writes. The file the first get downloads is checked to be
  identical. The fixed cost of a CLI process (start-up plus one request, ``skiff volume
  list``) is reported too. The CLI on the server's machine moves blocks through the
  server's local-transfer socket (file descriptors, no HTTP bodies); the same put and get
  with ``SKIFF_VOLUME_LOCAL=0`` (HTTP only, as from another machine) are measured too.
- 1,000-file tree: ``--files`` small files (1 KiB of random bytes each, in 10
  directories) uploaded with ``Volume.batch_upload()`` (timed) into ``bench-tree``, then
  the wall time from ``.remote()`` to the result of a function that mounts the volume
  (``volumes={"/data": tree}``) and counts its files with ``os.walk``:
  - cold: ``count_cold`` has ``max_inputs=1``, and the script waits until it has no
    container before each call, so every call starts a container that mounts the newest
    version (laying out the version's tree of hard links the first time it is mounted);
    ``no_volume`` (the same, without a volume) gives the container start alone;
  - warm: ``count_warm`` keeps one container (``min_containers=1``) that mounted the
    previous version; after a new tree is committed (the previous one removed, the new
    one uploaded) it calls ``tree.reload()`` and then counts.
  Each call checks it counted exactly ``--files`` files. Repeat ``i`` replaces the tree
  with a new one, then measures warm, then cold.

Each measurement runs ``--repeats`` times (after an untimed warm-up for the tree's cold
and warm calls and for the no-volume cold start) and the median is reported.

How: the script starts its own ``skiff server`` subprocess with ``SKIFF_RUNTIME=oci`` (a
scratch ``SKIFF_HOME`` in a temporary directory whose ``images`` links to the test
suite's shared layer cache, ``SKIFF_TEST_IMAGE_CACHE`` or /var/tmp/skiff-test-images, so
the default image is built once per machine; a free port), measures, and stops it. It
prints two tables and appends them, with the date, the machine, the software versions
and the command, to ``bench/RESULTS.md`` (not with ``--no-record``). Target: put and get
each reach at least 50% of the faster plain copy's throughput.

The functions and the volume are defined at module level because a skiff container
imports the function's module by name (this file's stem, ``volume``); everything else
runs under ``if __name__ == "__main__"`` so that import does nothing else. The helpers
this script shares with the others are in ``_common.py``, imported only when it runs as
a script: a container has this file alone.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
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
        versions,
    )

app = skiff.App("bench-volume")
tree = skiff.Volume.from_name("bench-tree", create_if_missing=True)


def count_files(root: str) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


@app.function(volumes={"/data": tree}, max_inputs=1)
def count_cold() -> int:
    return count_files("/data")


@app.function(volumes={"/data": tree}, min_containers=1, scaledown_window=3600)
def count_warm(reload: bool) -> int:
    if reload:
        tree.reload()
    return count_files("/data")


@app.function(max_inputs=1)
def no_volume() -> int:
    return 0


IO_VOLUME = "bench-io"
CHUNK = 16 << 20  # bytes of random data written at a time
SMALL_FILE = 1024  # bytes in each file of the tree
TREE_DIRS = 10
TIME = "/usr/bin/time"

TARGET_FRACTION_OF_COPY = 0.5


# -- measuring -------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    max_rss_mb: float | None = None  # of the process that ran it, when it was a subprocess


def timed_command(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` to completion: its wall time and its peak RSS."""
    with tempfile.NamedTemporaryFile(prefix="bench-time-", suffix=".txt") as report:
        wrapped = [TIME, "-v", "-o", report.name, *cmd] if os.access(TIME, os.X_OK) else cmd
        start = time.perf_counter()
        res = subprocess.run(wrapped, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if res.returncode != 0:
            raise RuntimeError(f"`{shlex.join(cmd)}` failed with exit code {res.returncode}:\n{res.stderr.strip()}")
        if wrapped is cmd:
            kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        else:
            kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", Path(report.name).read_text())[1])
    return Run(seconds, kb * 1024 / 1e6)


def timed_call(fn: Callable[[], object]) -> Run:
    start = time.perf_counter()
    fn()
    return Run(time.perf_counter() - start)


def median(values: list[float]) -> float:
    return statistics.median(values)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


@contextlib.contextmanager
def server_peak_growth(pid: int, into: list[float]):
    """Appends the growth of ``pid``'s peak RSS over the block, in MB, to ``into``."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = vm_kb(pid, "VmRSS")
    yield
    into.append((vm_kb(pid, "VmHWM") - before) * 1024 / 1e6)


# -- skiff -----------------------------------------------------------------------------


@dataclass
class Transfer:
    mb_per_s: float
    max_rss_mb: float | None = None
    server_growth_mb: float | None = None


@dataclass
class IoResults:
    size: int
    put: Transfer
    get: Transfer
    copyfile: Transfer
    cp: Transfer
    cli_fixed_s: float
    http_put: Transfer
    http_get: Transfer


def measure_io(server: BenchServer, work: Path, size_mib: int, repeats: int) -> IoResults:
    size = size_mib << 20
    src = work / "big.bin"
    print(f"  writing {size_mib:,} MiB of random bytes to {src}", flush=True)
    digest = hashlib.sha256()
    with open(src, "wb") as f:
        for _ in range(size // CHUNK):
            chunk = os.urandom(CHUNK)
            digest.update(chunk)
            f.write(chunk)
        rest = os.urandom(size % CHUNK)
        digest.update(rest)
        f.write(rest)
    expected = digest.hexdigest()
    out = work / "out.bin"

    def mb_s(run: Run) -> float:
        return size / run.seconds / 1e6

    def fresh(path: Path) -> None:
        path.unlink(missing_ok=True)
        os.sync()

    cli = server.cli
    env = server.env
    timed_command(cli("volume", "list"), env)  # warms the page cache for the CLI's imports
    fixed = median([timed_command(cli("volume", "list"), env).seconds for _ in range(5)])
    print(f"  CLI start-up + one request (`skiff volume list`): {fixed * 1000:.0f} ms", flush=True)

    puts, gets, copies, cps, http_puts, http_gets = [], [], [], [], [], []
    put_growth: list[float] = []
    get_growth: list[float] = []
    http_env = dict(env, SKIFF_VOLUME_LOCAL="0")
    for r in range(repeats):
        for put_runs, get_runs, run_env in ((puts, gets, env), (http_puts, http_gets, http_env)):
            subprocess.run(cli("volume", "delete", "-y", IO_VOLUME), env=env, capture_output=True)
            timed_command(cli("volume", "create", IO_VOLUME), env)
            os.sync()
            with server_peak_growth(server.proc.pid, put_growth):
                put_runs.append(timed_command(cli("volume", "put", IO_VOLUME, str(src), "/big.bin"), run_env))
            fresh(out)
            with server_peak_growth(server.proc.pid, get_growth):
                get_runs.append(timed_command(cli("volume", "get", IO_VOLUME, "/big.bin", str(out)), run_env))
            if r == 0 and sha256_file(out) != expected:
                raise RuntimeError("the file `skiff volume get` downloaded differs from the one uploaded")
            fresh(out)
        copies.append(timed_call(lambda: shutil.copyfile(src, out)))
        fresh(out)
        cps.append(timed_command(["cp", str(src), str(out)]))
        fresh(out)
        print(f"  repeat {r + 1}/{repeats}: put {mb_s(puts[-1]):,.0f} MB/s (CLI peak RSS {puts[-1].max_rss_mb:.0f} MB), "
              f"get {mb_s(gets[-1]):,.0f} MB/s (CLI peak RSS {gets[-1].max_rss_mb:.0f} MB), "
              f"HTTP only: put {mb_s(http_puts[-1]):,.0f} MB/s, get {mb_s(http_gets[-1]):,.0f} MB/s, "
              f"copyfile {mb_s(copies[-1]):,.0f} MB/s, cp {mb_s(cps[-1]):,.0f} MB/s; server peak RSS growth: "
              f"put +{put_growth[-1]:.0f} MB, get +{get_growth[-1]:.0f} MB", flush=True)
    subprocess.run(cli("volume", "delete", "-y", IO_VOLUME), env=env, capture_output=True)
    src.unlink()

    def summary(runs: list[Run], growth: list[float] | None = None) -> Transfer:
        rss = [r.max_rss_mb for r in runs if r.max_rss_mb is not None]
        return Transfer(median([mb_s(r) for r in runs]), max(rss) if rss else None, max(growth) if growth else None)

    return IoResults(size, summary(puts, put_growth), summary(gets, get_growth), summary(copies), summary(cps), fixed,
                     summary(http_puts), summary(http_gets))


@dataclass
class TreeResults:
    files: int
    upload_s: float
    cold_ms: float
    no_volume_ms: float
    warm_ms: float
    local_walk_ms: float


def make_tree(root: Path, files: int) -> None:
    for i in range(files):
        path = root / f"d{i % TREE_DIRS:02d}" / f"f{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(SMALL_FILE))


def measure_tree(work: Path, files: int, repeats: int) -> TreeResults:
    def upload(i: int) -> float:
        """Replace the tree with a new one; returns the seconds batch_upload took."""
        local = work / f"tree-{i}"
        make_tree(local, files)
        if i > 0:
            tree.remove_file(f"t{i - 1}", recursive=True)
        start = time.perf_counter()
        with tree.batch_upload() as batch:
            batch.put_directory(local, f"/t{i}")
        seconds = time.perf_counter() - start
        shutil.rmtree(work / f"tree-{i - 1}", ignore_errors=True)
        return seconds

    def wait_no_container(fn: skiff.Function, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while fn.get_current_stats().num_total_runners:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{fn.tag} still has a container after {timeout:g} s")
            time.sleep(0.01)

    def call(fn: Callable[[], int]) -> Callable[[], None]:
        def check() -> None:
            got = fn()
            if got != files:
                raise RuntimeError(f"the container counted {got} files in the volume, not {files}")
        return check

    uploads = [upload(0)]
    start = time.perf_counter()
    count_files(str(work / "tree-0"))
    local_walk_ms = (time.perf_counter() - start) * 1000
    print(f"  batch_upload of {files:,} files: {uploads[0]:.2f} s", flush=True)
    call(lambda: count_warm.remote(True))()  # the kept container (started with the app) reloads this version
    wait_no_container(count_cold)
    call(count_cold.remote)()  # warm-up: lays out this version's tree, the first cold start
    wait_no_container(no_volume)
    no_volume.remote()  # warm-up
    no_vol = []
    for _ in range(repeats):
        wait_no_container(no_volume)
        no_vol.append(timed_call(no_volume.remote).seconds * 1000)
    cold, warm = [], []
    for r in range(repeats):
        uploads.append(upload(r + 1))
        warm.append(timed_call(call(lambda: count_warm.remote(True))).seconds * 1000)
        wait_no_container(count_cold)
        cold.append(timed_call(call(count_cold.remote)).seconds * 1000)
        print(f"  repeat {r + 1}/{repeats}: batch_upload {uploads[-1]:.2f} s, warm reload + count {warm[-1]:.0f} ms, "
              f"cold {cold[-1]:.0f} ms (no volume: {no_vol[r]:.0f} ms)", flush=True)
    return TreeResults(files, median(uploads), median(cold), median(no_vol), median(warm), local_walk_ms)


def measure(args: argparse.Namespace) -> tuple[IoResults, TreeResults]:
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        home, work = Path(tmp) / "home", Path(tmp) / "work"
        home.mkdir()
        work.mkdir()
        with BenchServer(home, runtime="oci") as server:  # volumes need oci
            runtime = server.wait_healthy()["runtime"]
            print(f"  skiff server: runtime {runtime}, {server.url}, pid {server.proc.pid}", flush=True)
            server.point_client()
            print("put / get:", flush=True)
            io = measure_io(server, work, args.size_mib, args.repeats)
            print("1,000-file tree:", flush=True)
            with app.run(show_logs=False):
                tr = measure_tree(work, args.files, args.repeats)
            return io, tr


# -- reporting -------------------------------------------------------------------------


IO_HEADER = ("metric", "skiff", "shutil.copyfile", "cp", "skiff / faster copy", "target")
TREE_HEADER = ("metric", "skiff")


def io_rows(io: IoResults) -> list[tuple[str, ...]]:
    gib = f"{io.size / 2**30:g} GiB"
    best = max(io.copyfile.mb_per_s, io.cp.mb_per_s)

    def row(name: str, t: Transfer) -> tuple[str, ...]:
        ratio = t.mb_per_s / best
        ok = "met" if ratio >= TARGET_FRACTION_OF_COPY else "missed"
        return (f"{name} of a {gib} file (MB/s)", f"{t.mb_per_s:,.0f}", f"{io.copyfile.mb_per_s:,.0f}",
                f"{io.cp.mb_per_s:,.0f}", f"{ratio:.2f}×", f"≥ {TARGET_FRACTION_OF_COPY:.0%} of copy: {ok}")

    def rss(t: Transfer) -> str:
        return "—" if t.max_rss_mb is None else f"{t.max_rss_mb:,.0f}"

    return [
        row("`skiff volume put`", io.put),
        row("`skiff volume get`", io.get),
        row("`skiff volume put`, HTTP only", io.http_put),
        row("`skiff volume get`, HTTP only", io.http_get),
        ("peak RSS of the process, put (MB)", rss(io.put), "—", rss(io.cp), "—", "—"),
        ("peak RSS of the process, get (MB)", rss(io.get), "—", rss(io.cp), "—", "—"),
        ("peak RSS of the process, put / get, HTTP only (MB)", f"{rss(io.http_put)} / {rss(io.http_get)}",
         "—", "—", "—", "—"),
        ("server peak RSS growth, put / get, largest of both ways (MB)", f"{io.put.server_growth_mb:,.0f} / {io.get.server_growth_mb:,.0f}",
         "—", "—", "—", "—"),
        ("CLI start-up + one request, `skiff volume list` (ms)", f"{io.cli_fixed_s * 1000:,.0f}", "—", "—", "—", "—"),
    ]


def tree_rows(tr: TreeResults) -> list[tuple[str, ...]]:
    return [
        (f"`batch_upload()` of {tr.files:,} files of {SMALL_FILE:,} B (s)", f"{tr.upload_s:.2f}"),
        (f"cold: `.remote()` → count of {tr.files:,} files, new container (ms)", f"{tr.cold_ms:,.0f}"),
        ("cold: the same container start without a volume (ms)", f"{tr.no_volume_ms:,.0f}"),
        (f"warm: `.remote()` → `reload()` of a new {tr.files:,}-file commit + count (ms)", f"{tr.warm_ms:,.0f}"),
        (f"for scale: `os.walk` of the {tr.files:,} local files here (ms)", f"{tr.local_walk_ms:,.1f}"),
    ]


def report(io: list[tuple[str, ...]], tr: list[tuple[str, ...]], command: str, software: str,
           args: argparse.Namespace) -> None:
    append_results("volume", machine(tmp_disk=True), software, command, [
        f"- skiff server on its `oci` runtime; {args.size_mib:,} MiB of random bytes; each CLI command "
        f"is a fresh process timed start to exit, under `/usr/bin/time -v` for its peak RSS; "
        f"`shutil.copyfile` in the bench's own process, `cp` a subprocess; same file system for all; "
        f"`os.sync()` before each timed transfer, none syncs its own writes; put/get use the server's local "
        f"channel (same machine), the HTTP-only rows set `SKIFF_VOLUME_LOCAL=0`; MB = 10^6 bytes; medians of "
        f"{args.repeats} repeats (RSS: the largest)",
        "",
        *markdown_table(IO_HEADER, io),
        "",
        f"- {args.files:,}-file tree: `Volume.batch_upload()` of {args.files:,} files of {SMALL_FILE:,} B, "
        f"then `.remote()` to result of a function that mounts the volume at `/data` and counts files with "
        f"`os.walk`; cold = a new container (`max_inputs=1`), warm = a kept container that calls "
        f"`vol.reload()` after the tree was replaced by a new commit; medians of {args.repeats} repeats "
        f"after a warm-up",
        "",
        *markdown_table(TREE_HEADER, tr, left_last=False),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the file put and got, in MiB")
    parser.add_argument("--files", type=int, default=1000, help="files in the volume tree")
    parser.add_argument("--repeats", type=int, default=3, help="times each measurement runs")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parse_args(parser, size_mib=64, files=100, repeats=1)
    if os.geteuid() != 0:
        parser.error("run as root: volumes need the oci runtime")
    command = command_line()
    software = versions()  # before measuring: the commit the server runs, not one made meanwhile

    io, tr = measure(args)
    io_table, tree_table = io_rows(io), tree_rows(tr)
    print_table("skiff volume put / get vs a plain copy on the same disk", IO_HEADER, io_table, 150)
    print_table(f"a container seeing a committed {tr.files:,}-file volume tree", TREE_HEADER, tree_table, 150,
                left_last=False)
    if not args.no_record:
        report(io_table, tree_table, command, software, args)


if __name__ == "__main__":
    main()

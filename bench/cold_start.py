"""Cold starts, bare container starts and no-change image rebuilds of skiff's ``oci``
runtime, measured beside podman on the same machine.

    .venv/bin/python bench/cold_start.py [--runs 20] [--rebuilds 10]

(``scripts/setup-bench`` installs podman.) What it measures:

- cold start p50 / p99: the wall time of ``noop.remote()`` (a trivial function in the
  default image: Debian 12 + python3, already built) when the function has no container,
  up to its result. ``noop`` has ``max_inputs=1``, so its container exits after one
  input; before each call the script waits until the server reports no container for the
  app (GET /v1/apps/<app_id> says ``containers: 0``, which the server reports only after
  the runtime cleaned the container up), so every call starts one from scratch: overlayfs
  mount, cgroup, network namespace with slirp4netns, ``crun run``, Python start, import
  of skiff's in-container runtime and the function, and the exchange of the input and
  output with the server. One untimed cold start comes first. Each call returns its
  container's id; the script checks they all differ. The podman column is
  ``podman run --rm skiff-bench-base python3 -c pass`` with podman's default network:
  what starting a fresh Python in a fresh container with a network costs with podman.
- bare start p50 / p99: the same root filesystem (the default image's only layer, the
  directory under ``SKIFF_HOME/images/layers/<id>/fs``) started directly with crun,
  without the server: mount an overlayfs over it, write a ``config.json`` made by
  ``skiff.worker.runtime.bundle.config`` (skiff's own spec: namespaces, masked paths,
  capabilities, rlimits, a pids-limited cgroup) plus an empty network namespace, ``crun
  run`` ``python3 -c pass``, then unmount and delete the bundle: the same work as
  ``podman run --rm --network=none`` does, which is its podman column (the rootfs imported
  into podman with ``tar -C <fs> -c . | podman import - skiff-bench-base``).
- no-change rebuild p50: the time for the server to answer that an image whose layers
  all exist is ready, through the SDK's own path (``skiff._runner.build_image``: POST
  /v1/images, then wait for "ready"), for ``Image.debian_slim()`` (the default image)
  and ``Image.debian_slim().run_commands(...)`` (one build step on top; built once,
  untimed, if the shared layer cache lacks it). The podman column is ``podman build`` of
  the equivalent Containerfile (``FROM skiff-bench-base`` plus the same ``RUN``), built
  once and then rebuilt from podman's layer cache.

Each measurement has two untimed warm-up runs (except cold starts: one), and p50 / p99
are over ``--runs`` timed runs (``--rebuilds`` for rebuilds).

How: the script starts its own ``skiff server`` subprocess with ``SKIFF_RUNTIME=oci`` (a
scratch ``SKIFF_HOME`` in a temporary directory whose ``images`` links to the test
suite's shared layer cache, ``SKIFF_TEST_IMAGE_CACHE`` or /var/tmp/skiff-test-images, so
the base image is built once per machine; a free port), measures the cold starts and
rebuilds, stops the server, then measures bare crun and podman one after the other, so
nothing else competes for the CPUs. Podman's flags are probed (some hosts need the
cgroupfs manager, the file events backend, or explicit rlimits, because crun without
CAP_SYS_RESOURCE cannot raise them) and the ones used are printed and recorded. It
prints a table and appends it, with the date, the machine and the command, to
``bench/RESULTS.md``; then it removes the podman images it made.

``noop`` is defined at module level because a skiff container imports the function's
module by name (this file's stem, ``cold_start``); everything else runs under
``if __name__ == "__main__"`` and imports lazily, so that import stays cheap.
"""

from __future__ import annotations

import argparse
import contextlib
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

app = skiff.App("bench-cold-start")


@app.function(max_inputs=1)
def noop() -> str:
    return os.environ["SKIFF_CONTAINER_ID"]


HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
IMAGE_CACHE = Path(os.environ.get("SKIFF_TEST_IMAGE_CACHE", "/var/tmp/skiff-test-images"))
BASE_STEP = {"kind": "debian_slim", "suite": "bookworm", "python": "3.11"}  # the default image
RUN_STEP = "echo skiff-bench > /bench"
PODMAN_IMAGE = "skiff-bench-base"
PODMAN_BUILT_IMAGES = {"Containerfile.base": "skiff-bench-rebuild-base", "Containerfile.step": "skiff-bench-rebuild-step"}
BARE_CGROUP = "skiff-bench"
WARMUPS = 2

TARGET_COLD_P50_MS = 300.0
TARGET_BARE_P50_MS = 50.0
TARGET_REBUILD_MS = 1000.0


@dataclass
class Stats:
    p50: float  # milliseconds
    p99: float

    @classmethod
    def of(cls, samples_ms: list[float]) -> Stats:
        cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
        return cls(p50=statistics.median(samples_ms), p99=cuts[98])


def timed(fn: Callable[[], object], runs: int, label: str, warmups: int = WARMUPS,
          between: Callable[[], None] | None = None) -> Stats:
    """p50 / p99 of ``runs`` calls of ``fn`` (after ``warmups``), in milliseconds;
    ``between`` runs untimed after every call."""
    samples = []
    for i in range(warmups + runs):
        start = time.perf_counter()
        fn()
        elapsed = (time.perf_counter() - start) * 1000
        if i >= warmups:
            samples.append(elapsed)
        if between is not None:
            between()
    stats = Stats.of(samples)
    print(f"  {label}: p50 {stats.p50:.1f} ms, p99 {stats.p99:.1f} ms "
          f"(min {min(samples):.1f}, max {max(samples):.1f}, {runs} runs)", flush=True)
    return stats


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def check(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    res = run(cmd, **kwargs)
    if res.returncode != 0:
        raise RuntimeError(f"`{shlex.join(cmd)}` failed with exit code {res.returncode}:\n{res.stderr.strip()}")
    return res


# -- skiff -----------------------------------------------------------------------------


class SkiffServer:
    """A ``skiff server`` subprocess on the ``oci`` runtime, on a free port with a scratch
    ``SKIFF_HOME`` that shares the test suite's image layer cache."""

    def __init__(self, home: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.home = home
        IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
        (home / "images").symlink_to(IMAGE_CACHE)
        self.url = f"http://127.0.0.1:{port}"
        self.log = home / "server.log"
        env = dict(os.environ, SKIFF_HOME=str(home), SKIFF_SERVER_URL=self.url, SKIFF_RUNTIME="oci")
        env.pop("SKIFF_TOKEN", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "skiff.cli", "server", "start", "--foreground", "--port", str(port)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )

    def wait_healthy(self, timeout: float = 30.0) -> dict:
        from skiff._local_server import is_healthy

        deadline = time.monotonic() + timeout
        while not is_healthy(self.url, timeout=0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"skiff server did not start; its log:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.05)
        return self.get("/v1/health")

    def get(self, path: str) -> dict | list:
        token = (self.home / "token").read_text().strip()
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def wait_no_containers(self, app_id: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            (info,) = self.get(f"/v1/apps/{app_id}")
            if info["containers"] == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"app {app_id} still has {info['containers']} container(s) after {timeout:g} s")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class SkiffResults:
    cold: Stats
    rebuild_base: Stats
    rebuild_step: Stats
    base_layer: Path  # the default image's root filesystem, in the shared cache


def measure_skiff(runs: int, rebuilds: int) -> SkiffResults:
    from skiff._client import get_client
    from skiff._runner import build_image
    from skiff._sync import run_sync
    from skiff.worker.images import layer_ids

    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        server = SkiffServer(Path(tmp))
        try:
            health = server.wait_healthy()
            if health.get("runtime") != "oci":
                raise RuntimeError(f"the server runs the {health.get('runtime')!r} runtime, not 'oci'; "
                                   f"its log:\n{server.log.read_text(errors='replace')}")
            print(f"  skiff server: runtime {health['runtime']}, {server.url}", flush=True)
            # skiff reads its settings from the environment when it first talks to a server.
            os.environ.update(SKIFF_HOME=tmp, SKIFF_SERVER_URL=server.url)
            os.environ.pop("SKIFF_TOKEN", None)
            base_layer = Path(tmp) / "images" / "layers" / layer_ids([BASE_STEP])[0] / "fs"
            if not base_layer.is_dir():
                print("  building the default image into the shared layer cache (minutes, once per machine)", flush=True)
            with app.run(show_logs=False):
                app_id = app._running.app_id
                server.wait_no_containers(app_id)
                seen: list[str] = []
                cold = timed(lambda: seen.append(noop.remote()), runs, "skiff cold start", warmups=1,
                             between=lambda: server.wait_no_containers(app_id))
                if len(set(seen)) != len(seen):
                    raise RuntimeError(f"a container served two calls: {seen}")

                client = run_sync(get_client())
                base = skiff.Image.debian_slim()
                step = base.run_commands(RUN_STEP)
                run_sync(build_image(client, step, show_progress=False))  # built once per cache
                rebuild_base = timed(lambda: run_sync(build_image(client, base, show_progress=False)),
                                     rebuilds, "skiff no-change rebuild, base image")
                rebuild_step = timed(lambda: run_sync(build_image(client, step, show_progress=False)),
                                     rebuilds, "skiff no-change rebuild, base + RUN step")
            return SkiffResults(cold, rebuild_base, rebuild_step, IMAGE_CACHE / base_layer.relative_to(Path(tmp) / "images"))
        finally:
            server.stop()


def measure_bare_crun(base_layer: Path, runs: int) -> tuple[Stats, str]:
    """crun starting ``python3 -c pass`` over an overlayfs of ``base_layer`` with skiff's
    own bundle spec; returns the stats and the crun version."""
    from skiff.worker.runtime import bundle
    from skiff.worker.runtime.host import host_rlimits, probe
    from skiff.worker.runtime.oci import DEFAULT_PATH

    host = probe()  # the runtime binary, and the fixes this host needs (as the server makes them)
    counter = iter(range(1 << 30))
    with tempfile.TemporaryDirectory(prefix="skiff-bench-bare-") as tmp:
        def start() -> None:
            name = f"skiff-bench-{os.getpid()}-{next(counter)}"
            root = Path(tmp) / name
            rootfs = root / "rootfs"
            bundle.mount_overlay([base_layer], root / "upper", root / "work", rootfs)
            try:
                spec = bundle.config(
                    rootfs=rootfs, args=["python3", "-c", "pass"], env={"PATH": DEFAULT_PATH, "HOME": "/root"},
                    cwd="/", binds=[], rlimits=host_rlimits(), netns=None, cgroups_path=f"/{BARE_CGROUP}/{name}",
                )
                spec["linux"]["namespaces"].append({"type": "network"})  # empty, like podman --network=none
                (root / "config.json").write_text(json.dumps(spec))
                check([host.binary, "run", "--bundle", str(root), name])
            finally:
                bundle.unmount(rootfs)
                shutil.rmtree(root, ignore_errors=True)

        try:
            stats = timed(start, runs, f"bare {host.name} start")
        finally:
            for parent in Path("/sys/fs/cgroup").glob(f"*/{BARE_CGROUP}"):  # crun leaves the empty parents
                with contextlib.suppress(OSError):
                    parent.rmdir()
    version = check([host.binary, "--version"]).stdout.splitlines()[0]
    return stats, version


# -- podman ----------------------------------------------------------------------------


@dataclass
class PodmanResults:
    version: str
    global_flags: list[str]
    run_flags: list[str]
    cold: Stats  # default network
    bare: Stats  # --network=none
    rebuild_base: Stats
    rebuild_step: Stats

    def describe_flags(self) -> str:
        return shlex.join(["podman", *self.global_flags, "run", "--rm", *self.run_flags])


def _podman_flag_candidates() -> list[tuple[list[str], list[str]]]:
    """(global flags, run flags) to try, simplest first. Without CAP_SYS_RESOURCE crun
    cannot raise rlimits, and podman asks for more open files than the host allows by
    default; podman also runs with RLIMIT_NPROC lowered to kernel.pid_max on some hosts."""
    import resource

    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    explicit = ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]
    globals_ = [[], ["--cgroup-manager=cgroupfs", "--events-backend=file"]]
    return [(g, r) for g in globals_ for r in ([], ["--ulimit", "host"], explicit)]


def measure_podman(base_layer: Path, runs: int, rebuilds: int) -> PodmanResults:
    if shutil.which("podman") is None:
        raise RuntimeError("podman is missing; scripts/setup-bench installs it")
    version = check(["podman", "--version"]).stdout.strip()
    remove_podman_images()
    print(f"  importing {base_layer} as {PODMAN_IMAGE}", flush=True)
    tar = subprocess.Popen(["tar", "-C", str(base_layer), "-c", "."], stdout=subprocess.PIPE)
    imported = run(["podman", "import", "-", PODMAN_IMAGE], stdin=tar.stdout)
    tar.stdout.close()  # type: ignore[union-attr]
    if tar.wait() != 0 or imported.returncode != 0:
        raise RuntimeError(f"importing the rootfs into podman failed:\n{imported.stderr.strip()}")

    tried = []
    for global_flags, run_flags in _podman_flag_candidates():
        cmd = ["podman", *global_flags, "run", "--rm", *run_flags, "--network=none", PODMAN_IMAGE, "true"]
        res = run(cmd)
        if res.returncode == 0:
            break
        tried.append(f"  {shlex.join(cmd)}: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
    else:
        raise RuntimeError("podman could not run a container with any flags tried:\n" + "\n".join(tried))
    print(f"  podman flags: {shlex.join([*global_flags, 'run', '--rm', *run_flags])}"
          + (f" (plainer flags failed: {len(tried)} tried)" if tried else ""), flush=True)

    def podman_run(*extra: str) -> Callable[[], None]:
        cmd = ["podman", *global_flags, "run", "--rm", *run_flags, *extra, PODMAN_IMAGE, "python3", "-c", "pass"]
        return lambda: check(cmd)

    cold = timed(podman_run(), runs, "podman run, default network")
    bare = timed(podman_run("--network=none"), runs, "podman run --network=none")

    with tempfile.TemporaryDirectory(prefix="skiff-bench-podman-") as ctx:
        files = {"Containerfile.base": f"FROM {PODMAN_IMAGE}\n",
                 "Containerfile.step": f"FROM {PODMAN_IMAGE}\nRUN {RUN_STEP}\n"}
        for name, text in files.items():
            (Path(ctx) / name).write_text(text)

        def build(file: str) -> Callable[[], None]:
            cmd = ["podman", *global_flags, "build", "-q", *run_flags, "-t", PODMAN_BUILT_IMAGES[file], "-f", file, ctx]
            return lambda: check(cmd, cwd=ctx)

        build("Containerfile.step")()  # the first build runs the step; the timed ones find it cached
        rebuild_base = timed(build("Containerfile.base"), rebuilds, "podman no-change rebuild, base image")
        rebuild_step = timed(build("Containerfile.step"), rebuilds, "podman no-change rebuild, base + RUN step")
    return PodmanResults(version, global_flags, run_flags, cold, bare, rebuild_base, rebuild_step)


def remove_podman_images() -> None:
    """Remove this script's podman images (and the layers its builds cached)."""
    if shutil.which("podman") is None:
        return
    for image in (*PODMAN_BUILT_IMAGES.values(), PODMAN_IMAGE):
        run(["podman", "rmi", "-f", image])
    run(["podman", "image", "prune", "-f"])  # the dangling intermediate images of the cached RUN step


# -- reporting -------------------------------------------------------------------------


HEADER = ("metric", "skiff", "podman", "skiff/podman", "target")


def rows(sk: SkiffResults, bare: Stats, pod: PodmanResults) -> list[tuple[str, ...]]:
    """(metric, skiff, podman, skiff/podman, target) for each reported metric."""
    def target(ours: float, theirs: float, limit: float | None = None) -> str:
        parts = ([f"≤ {limit:g} ms"] if limit is not None else []) + ["< podman"]
        ok = ours < theirs and (limit is None or ours <= limit)
        return f"{', '.join(parts)}: {'met' if ok else 'missed'}"

    def row(metric: str, ours: float, theirs: float, limit: float | None = None) -> tuple[str, ...]:
        return (metric, f"{ours:.1f}", f"{theirs:.1f}", f"{ours / theirs:.2f}×", target(ours, theirs, limit))

    return [
        row("cold start p50 (ms)", sk.cold.p50, pod.cold.p50, TARGET_COLD_P50_MS),
        row("cold start p99 (ms)", sk.cold.p99, pod.cold.p99),
        row("bare container start p50 (ms)", bare.p50, pod.bare.p50, TARGET_BARE_P50_MS),
        row("bare container start p99 (ms)", bare.p99, pod.bare.p99),
        row("no-change rebuild p50, base image (ms)", sk.rebuild_base.p50, pod.rebuild_base.p50, TARGET_REBUILD_MS),
        row("no-change rebuild p50, base + RUN step (ms)", sk.rebuild_step.p50, pod.rebuild_step.p50, TARGET_REBUILD_MS),
    ]


def print_table(table_rows: list[tuple[str, ...]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="skiff vs podman: cold start, bare container start, no-change rebuild (lower is better)")
    for i, name in enumerate(HEADER):
        table.add_column(name, justify="left" if i in (0, len(HEADER) - 1) else "right")
    for row in table_rows:
        table.add_row(*row)
    Console(width=max(120, shutil.get_terminal_size().columns)).print(table)  # no wrapped cells


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown")
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal:")))
    return (f"{len(os.sched_getaffinity(0))} CPUs ({model}), {mem_kb / 2**20:.1f} GiB memory, "
            f"Linux {platform.release()}, cgroup v{1 if not Path('/sys/fs/cgroup/cgroup.controllers').exists() else 2}")


def skiff_commit() -> str:
    """The commit of the checkout skiff is imported from, and where, if not this one (a
    clean worktree keeps the numbers tied to a commit while this tree is being edited)."""
    checkout = Path(skiff.__file__).resolve().parent.parent
    res = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=checkout, capture_output=True, text=True)
    return f"commit {res.stdout.strip() or 'unknown'}" + ("" if checkout == HERE.parent else f", imported from {checkout}")


def versions(crun: str, podman: str) -> str:
    return (f"Python {platform.python_version()}, skiff {skiff.__version__} "
            f"({skiff_commit()}), {crun}, {podman}")


def append_results(table_rows: list[tuple[str, ...]], command: str, args: argparse.Namespace,
                   crun: str, pod: PodmanResults) -> None:
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nEach section is one run of a script in `bench/`, appended by it.\n")
    lines = [
        "",
        f"## cold_start — {datetime.now(UTC).strftime('%a %b %d %H:%M:%S UTC %Y')}",
        "",
        f"- machine: {machine()}",
        f"- software: {versions(crun, pod.version)}",
        f"- command: `{command}`",
        f"- podman: `{pod.describe_flags()} [--network=none] skiff-bench-base python3 -c pass`",
        f"- skiff server on its `oci` runtime; cold start = `noop.remote()` with no container "
        f"(`max_inputs=1`, default image cached), {args.runs} runs; bare start = `crun run` of "
        f"`python3 -c pass` over an overlayfs of the default image's rootfs with skiff's bundle "
        f"spec and an empty network namespace, mount to unmount, vs `podman run --rm --network=none` "
        f"of the same rootfs, {args.runs} runs; cold start's podman column is `podman run --rm` with "
        f"its default network; rebuilds: {args.rebuilds} runs, SDK `build_image` vs cached `podman build`",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 2) + ["---"]) + "|",
        *("| " + " | ".join(row) + " |" for row in table_rows),
    ]
    with open(RESULTS, "a") as f:
        f.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed cold starts and container starts")
    parser.add_argument("--rebuilds", type=int, default=10, help="timed no-change rebuilds")
    args = parser.parse_args()
    if args.runs < 2 or args.rebuilds < 2:
        parser.error("--runs and --rebuilds must be at least 2")
    if os.geteuid() != 0:
        parser.error("run as root: the oci runtime, overlayfs mounts and rootful podman need it")
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])

    print("skiff (server on the oci runtime):", flush=True)
    sk = measure_skiff(args.runs, args.rebuilds)
    print("bare crun:", flush=True)
    bare, crun = measure_bare_crun(sk.base_layer, args.runs)
    print("podman:", flush=True)
    try:
        pod = measure_podman(sk.base_layer, args.runs, args.rebuilds)
    finally:
        remove_podman_images()

    table_rows = rows(sk, bare, pod)
    print_table(table_rows)
    print(f"podman flags: {pod.describe_flags()}")
    append_results(table_rows, command, args, crun, pod)
    print(f"appended to {os.path.relpath(RESULTS)}")


if __name__ == "__main__":
    main()

"""Cold starts, bare container starts and no-change image rebuilds of skiff's ``oci``
runtime, measured beside podman on the same machine.

    .venv/bin/python bench/cold_start.py [--runs 20] [--rebuilds 10] [--no-record]

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
``bench/RESULTS.md`` (not with ``--no-record``); then it removes the podman images it made.

``noop`` is defined at module level because a skiff container imports the function's
module by name (this file's stem, ``cold_start``); everything else runs under
``if __name__ == "__main__"`` and imports lazily, so that import stays cheap. The
helpers this script shares with the others are in ``_common.py``, imported only when it
runs as a script: a container has this file alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import skiff

if __name__ == "__main__":  # containers import this file alone, without its neighbours
    from _common import (
        IMAGE_CACHE,
        BenchServer,
        Stats,
        append_results,
        command_line,
        machine,
        markdown_table,
        parse_args,
        print_table,
        versions,
    )

app = skiff.App("bench-cold-start")


@app.function(max_inputs=1)
def noop() -> str:
    return os.environ["SKIFF_CONTAINER_ID"]


BASE_STEP = {"kind": "debian_slim", "suite": "bookworm", "python": "3.11"}  # the default image
RUN_STEP = "echo skiff-bench > /bench"
PODMAN_IMAGE = "skiff-bench-base"
PODMAN_BUILT_IMAGES = {"Containerfile.base": "skiff-bench-rebuild-base", "Containerfile.step": "skiff-bench-rebuild-step"}
BARE_CGROUP = "skiff-bench"
WARMUPS = 2

TARGET_COLD_P50_MS = 300.0
TARGET_BARE_P50_MS = 50.0
TARGET_REBUILD_MS = 1000.0


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
    from skiff.protocol.images import layer_ids

    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp, BenchServer(Path(tmp), runtime="oci") as server:
        health = server.wait_healthy()
        print(f"  skiff server: runtime {health['runtime']}, {server.url}", flush=True)
        server.point_client()
        base_layer = Path(tmp) / "images" / "layers" / layer_ids([BASE_STEP])[0] / "fs"
        if not base_layer.is_dir():
            print("  building the default image into the shared layer cache (minutes, once per machine)", flush=True)
        with app.run(show_logs=False):
            app_id = app._running.app_id
            server.wait_no_containers(app_id, poll=0.01)
            seen: list[str] = []
            cold = timed(lambda: seen.append(noop.remote()), runs, "skiff cold start", warmups=1,
                         between=lambda: server.wait_no_containers(app_id, poll=0.01))
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


def report(table_rows: list[tuple[str, ...]], command: str, args: argparse.Namespace,
           crun: str, pod: PodmanResults) -> None:
    append_results("cold_start", machine(cgroup=True), versions(crun, pod.version), command, [
        f"- podman: `{pod.describe_flags()} [--network=none] skiff-bench-base python3 -c pass`",
        f"- skiff server on its `oci` runtime; cold start = `noop.remote()` with no container "
        f"(`max_inputs=1`, default image cached), {args.runs} runs; bare start = `crun run` of "
        f"`python3 -c pass` over an overlayfs of the default image's rootfs with skiff's bundle "
        f"spec and an empty network namespace, mount to unmount, vs `podman run --rm --network=none` "
        f"of the same rootfs, {args.runs} runs; cold start's podman column is `podman run --rm` with "
        f"its default network; rebuilds: {args.rebuilds} runs, SDK `build_image` vs cached `podman build`",
        "",
        *markdown_table(HEADER, table_rows),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed cold starts and container starts")
    parser.add_argument("--rebuilds", type=int, default=10, help="timed no-change rebuilds")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parse_args(parser, runs=5, rebuilds=2)
    if args.runs < 2 or args.rebuilds < 2:
        parser.error("--runs and --rebuilds must be at least 2")
    if os.geteuid() != 0:
        parser.error("run as root: the oci runtime, overlayfs mounts and rootful podman need it")
    command = command_line()

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
    print_table("skiff vs podman: cold start, bare container start, no-change rebuild (lower is better)",
                HEADER, table_rows, 120)
    print(f"podman flags: {pod.describe_flags()}")
    if not args.no_record:
        report(table_rows, command, args, crun, pod)


if __name__ == "__main__":
    main()

"""Faults in containers: what a container's death costs the inputs it held."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

import skiff
from skiff import _client
from skiff._deploy import deploy_app
from skiff._sync import run_sync
from skiff.exception import ExecutionError
from tests.apps import faults_app

N = 40


def _map(times: int) -> tuple[list, dict]:
    log_name = f"tries-{uuid.uuid4().hex[:8]}"
    kwargs = {"fatal": 3, "times": times, "log_name": log_name}
    results = list(faults_app.crashes_on.map(range(N), kwargs=kwargs, return_exceptions=True))
    return results, dict(skiff.Dict.from_name(log_name).items())


def test_a_dead_container_charges_a_retry_only_to_the_input_that_killed_it(client_env):
    """A sequential container takes quick inputs in batches (prefetch). When it dies, the
    inputs it held spend no retry; handed out alone again, the one that kills its
    container once more is known, and only it pays. The policy here allows one retry."""
    with faults_app.app.run(show_logs=False):
        # Input 3 kills its container twice: once in a batch (free), once alone (its one
        # retry). Before, every input of the batch paid for the first death, and input 3
        # had no retry left for the second.
        results, tries = _map(times=2)
        assert results == [x * 2 for x in range(N)]
        assert tries[3] == 3
        assert all(n <= 2 for x, n in tries.items() if x != 3), tries  # ran again at most once, free

        # Three deaths: input 3 runs out of retries and fails; no other input does.
        results, tries = _map(times=3)
    failed = {x: r for x, r in enumerate(results) if isinstance(r, BaseException)}
    assert set(failed) == {3} and isinstance(failed[3], ExecutionError), failed
    assert "died" in str(failed[3])
    assert tries[3] == 3


def _leftovers(cids: list[str]) -> dict[str, list[str]]:
    """What of these containers is still on the machine: network namespaces, slirp4netns
    processes, cgroup folders and container processes."""
    names = {"skiff-" + cid[-12:] for cid in cids}
    found: dict[str, list[str]] = {"netns": [], "slirp4netns": [], "cgroups": [], "processes": []}
    netns = Path("/run/netns")
    found["netns"] = sorted(p.name for p in netns.iterdir() if p.name in names) if netns.exists() else []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if argv[0].endswith("slirp4netns") and any(f"/run/netns/{n}" in argv for n in names):
            found["slirp4netns"].append(proc.name)
        if any(f"SKIFF_CONTAINER_ID={cid}" in environ for cid in cids):
            found["processes"].append(proc.name)
    for root in Path("/sys/fs/cgroup").rglob("skiff"):
        found["cgroups"] += [str(p) for p in root.iterdir() if p.is_dir() and p.name in cids]
    return found


def test_a_server_killed_by_sigkill_leaves_nothing_behind_once_restarted(fresh_server):
    """Its containers outlive it (with their namespaces, slirp4netns and cgroups); the
    next start of the server stops and removes all of them."""
    if httpx.get(fresh_server.url + "/v1/health").json()["runtime"] != "oci":
        pytest.skip("only the oci runtime has namespaces and cgroups to leave behind")
    run_sync(deploy_app(faults_app.warm, show_progress=False))
    containers = fresh_server.home / "containers"
    deadline = time.monotonic() + 60
    while len(list(containers.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    old = [p.name for p in containers.iterdir()]
    assert len(old) == 2
    while time.monotonic() < deadline:  # until both containers run, with their network
        before = _leftovers(old)
        if len(before["netns"]) == 2 and len(before["slirp4netns"]) == 2 and len(before["processes"]) >= 2:
            break
        time.sleep(0.2)
    assert len(before["netns"]) == 2 and len(before["slirp4netns"]) == 2 and before["processes"], before

    fresh_server.proc.send_signal(signal.SIGKILL)
    fresh_server.proc.wait()
    assert _leftovers(old)["processes"], "the containers outlive a server killed by SIGKILL"
    fresh_server.start()
    left = _leftovers(old)
    assert left == {"netns": [], "slirp4netns": [], "cgroups": [], "processes": []}, left
    assert not any((containers / cid).exists() for cid in old)


def _kill_and_restart(server) -> None:
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    server.start()


def test_spawned_calls_survive_a_server_killed_by_sigkill(fresh_server):
    """Every spawned call completes once, with its own result, whether it had finished
    before the crash (its result was written down) or not (its input ran again after)."""
    run_sync(deploy_app(faults_app.slow, show_progress=False))
    fn = skiff.Function.from_name("fault-tests-slow", "slow_double")
    calls = [fn.spawn(x, 0.3) for x in range(12)]
    assert calls[0].get(timeout=60) == 0  # some finished, some not, when the server dies
    _kill_and_restart(fresh_server)
    run_sync(_client.reset_client())
    results = [skiff.FunctionCall.from_id(c.object_id).get(timeout=120) for c in calls]
    assert results == [x * 2 for x in range(12)]


def test_a_map_carries_on_across_a_server_killed_by_sigkill(fresh_server):
    """The client of a map in flight waits for the server to come back, sends again what
    may not have arrived, and gets every output once, in order."""
    results: list[int] = []
    errors: list[BaseException] = []

    def run_map() -> None:
        try:
            with faults_app.slow.run(show_logs=False):
                results.extend(faults_app.slow_double.map(range(120), kwargs={"seconds": 0.02}))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    worker = threading.Thread(target=run_map)
    worker.start()
    deadline = time.monotonic() + 60
    since = time.time() - 1
    while _map_outputs(fresh_server, since) < 20 and time.monotonic() < deadline:  # some way through
        time.sleep(0.05)
    _kill_and_restart(fresh_server)
    worker.join(180)
    assert not worker.is_alive(), "the map did not finish after the server came back"
    assert not errors, errors
    assert results == [x * 2 for x in range(120)]


def _map_outputs(server, since: float) -> int:
    """How many outputs of maps begun after ``since`` the server has written down."""
    query = ("SELECT coalesce(sum(json_array_length(o.outputs)), 0) FROM call_output_batches o "
             f"JOIN calls c ON c.id = o.call_id WHERE c.kind = 'map' AND c.created_at > {since}")
    path = server.home / "skiff.db"
    if "SKIFF_DATABASE_URL" in server.env:
        import psycopg

        with psycopg.connect(server.env["SKIFF_DATABASE_URL"].replace("postgresql+psycopg", "postgresql")) as db:
            return db.execute(query).fetchone()[0]
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        try:
            return db.execute(query).fetchone()[0]
        except sqlite3.OperationalError:  # not migrated yet
            return 0


def test_a_remote_call_in_flight_is_sent_again_after_a_server_crash(fresh_server):
    """A ``.remote()`` call is not kept across a restart (its caller is waiting on it): the
    SDK reconnects, finds the call gone, and sends it again under the same id."""
    got: list[int] = []

    def call() -> None:
        with faults_app.slow.run(show_logs=False):
            got.append(faults_app.slow_double.remote(21, 1.0))

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 60
    while not _remote_running(fresh_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    _kill_and_restart(fresh_server)
    worker.join(120)
    assert got == [42]


def _remote_running(server) -> bool:
    """A container of the server is running (the remote call's input is in it)."""
    containers = server.home / "containers"
    return containers.exists() and any(containers.iterdir())

"""Faults in containers: what a container's death costs the inputs it held."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

import skiff
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

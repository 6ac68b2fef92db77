"""Containers hold credentials scoped to their own work, and the server's files that hold
credentials or user data are private to its owner."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

import skiff
from skiff.protocol.http import BlockingHTTP
from tests.apps import security_app
from tests.conftest import skiff_cli


@pytest.fixture
def victim_app(client_env):
    result = skiff_cli("secret", "create", "victim-secret", "VICTIM_KEY=victim-value", "--force", env=client_env.env)
    assert result.returncode == 0, result.stderr
    other = skiff.App("security-other")

    @other.function(serialized=True)
    def idle() -> int:
        return 1

    with other.run(show_logs=False):
        yield client_env, other


def test_a_container_token_cannot_do_what_the_probe_did(victim_app):
    server, other = victim_app
    with security_app.app.run(show_logs=False):
        target = security_app.victim.remote()
        assert target["has_secret"]
        pending = security_app.victim.spawn()  # the owner's own call, which the attacker tries to reach
        results = security_app.attacker.remote({**target, "other_app_id": other.app_id,
                                                "caller_call_id": pending.object_id})
        assert pending.get(timeout=60)["has_secret"]  # untouched by the attempts
    assert results.pop("token kind")["body"] == "sk-c-", "the container holds the admin token"
    assert results.pop("own dict")["status"] == 200
    for attack, result in results.items():
        assert result["status"] in (401, 403, 409), f"{attack}: answered {result['status']}: {result['body']}"
        assert "victim-value" not in result["body"] and "victim's data" not in result["body"]
    # Nothing was changed by the attempts: the secret and the other app are still there.
    assert skiff_cli("secret", "list", env=server.env).stdout.count("victim-secret") == 1
    admin = BlockingHTTP(server.url, server.token())
    status, _, body = admin.send("GET", f"/v1/apps/{other.app_id}")
    admin.close()
    assert status == 200 and json.loads(body)[0]["state"] == "ephemeral", body


def test_a_container_token_dies_with_its_container(victim_app):
    server, _other = victim_app
    with security_app.app.run(show_logs=False):
        token = security_app.leak_token.remote()
        assert token.startswith("sk-c-")
    # The app stopped; once its container has exited (an idle one is given a moment to run
    # its exit hooks and commit), the token opens nothing any more.
    stale = BlockingHTTP(server.url, token)
    deadline = time.monotonic() + 20
    while True:
        status, _, _ = stale.send("GET", "/v1/deployed/none/functions/none", attempts=1)
        if status == 401 or time.monotonic() > deadline:
            break
        assert status == 404  # still its container's: a lookup it may make, of nothing
        time.sleep(0.2)
    stale.close()
    assert status == 401


def _mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_files_with_credentials_or_data_are_private(victim_app):
    """The server's home and every folder in it are 0700, so no other user can reach its
    database, blobs, volumes or containers; files holding a credential are 0600."""
    server, _other = victim_app
    home = str(server.home)
    with security_app.app.run(show_logs=False):
        security_app.victim.remote()
        wrong = [f"{home}: {oct(_mode(home))}"] if _mode(home) & 0o077 else []
        for entry in os.scandir(home):
            if entry.is_dir(follow_symlinks=False) and _mode(entry.path) & 0o077:
                wrong.append(f"{entry.path}: {oct(_mode(entry.path))}")
        containers = os.path.join(home, "containers")
        for entry in os.scandir(containers) if os.path.isdir(containers) else []:
            if entry.is_dir(follow_symlinks=False) and _mode(entry.path) & 0o077:
                wrong.append(f"{entry.path}: {oct(_mode(entry.path))}")
            config = os.path.join(entry.path, "config.json")
            if os.path.exists(config) and _mode(config) & 0o077:
                wrong.append(f"{config}: {oct(_mode(config))}")
        for name in os.listdir(home):
            path = os.path.join(home, name)
            if (name in ("token", "secret.key") or name.startswith(("skiff.db", "server.log"))) and _mode(path) & 0o077:
                wrong.append(f"{path}: {oct(_mode(path))}")
    assert not wrong, "\n".join(wrong[:20])


def test_a_container_is_fenced_off_the_hosts_own_addresses(client_env):
    """Its network namespace refuses every address the host holds (checked from the host,
    without sending anything there) and slirp's alias for the host's loopback, where this
    test listens."""
    import socket
    import subprocess

    import httpx

    if httpx.get(client_env.url + "/v1/health").json()["runtime"] != "oci":
        pytest.skip("the process runtime has no network isolation")
    from skiff.worker.runtime.network import host_addresses

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        with security_app.app.run(show_logs=False):
            got = security_app.reach_host.remote(listener.getsockname()[1])
            netns = "skiff-" + got["container_id"][-12:]
            rules = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "inet", "skiff_isolation"],
                                   capture_output=True, text=True)
    finally:
        listener.close()
    assert got["outcome"] == "ConnectionRefusedError", got
    assert rules.returncode == 0, rules.stderr
    import ipaddress

    for address in host_addresses() + ["10.0.2.2"]:
        covered = ipaddress.ip_address(address).is_link_local and ("fe80::/10" in rules.stdout or "169.254.0.0/16" in rules.stdout)
        assert address in rules.stdout or covered, (address, rules.stdout)
    assert "169.254.0.0/16" in rules.stdout  # a cloud's metadata service

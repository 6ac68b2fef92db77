"""Images and the oci runtime, end to end: real builds, real containers."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from pathlib import Path

import pytest

import skiff
from skiff._client import get_client
from skiff._runner import build_image
from skiff._sync import run_sync
from skiff.protocol.images import layer_ids
from tests.apps.image_app import app, network_probe, peek, python_and_six
from tests.conftest import ROOT, skiff_cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the oci runtime needs root")

FAILING = skiff.Image.debian_slim().run_commands("echo about to fail", "exit 3")


@pytest.fixture
def oci(client_env):
    health = run_sync(_health())
    if health["runtime"] != "oci":
        pytest.skip("the server runs the process runtime")
    return client_env


async def _health() -> dict:
    import httpx

    async with httpx.AsyncClient() as http:
        return (await http.get(os.environ["SKIFF_SERVER_URL"] + "/v1/health")).json()


async def _events(steps: list[dict]) -> list[dict]:
    """Ask for an image; the build's events, or [] when it was already built (a lookup)."""
    client = await get_client()
    status = await client.request("POST", "/images", json={"steps": steps})
    events, after = [], 0
    while status["status"] == "building":
        status = await client.request("GET", f"/images/{status['image_id']}/events", params={"after": after})
        events += status["events"]
        after = events[-1]["seq"] if events else after
    return events


def test_example_runs_in_its_image(oci):
    result = skiff_cli("run", "examples/images.py", env=oci.env, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    work = json.loads(next(line for line in lines if line.startswith("{")))
    assert work == {"HF_HOME": "/cache", "jq": "[4,4]", "mylib": "hello, skiff, from mylib", "numpy": 10,
                    "sees_host_home": False}
    assert "hog: container exceeded its memory limit of 256 MiB" in result.stdout


def test_host_files_are_invisible(oci):
    with app.run(show_logs=False):
        assert peek.remote("/root") is True
        assert peek.remote(str(ROOT / "pyproject.toml")) is False
        assert peek.remote(str(oci.home / "token")) is False
        assert peek.remote(str(oci.home / "skiff.db")) is False


def test_network_reaches_out_but_not_the_hosts_services(oci):
    with app.run(show_logs=False):
        seen = network_probe.remote(oci.port)
    assert seen["https"] == 200
    assert seen["127.0.0.1"] != "connected" and seen["10.0.2.2"] != "connected"


def test_failing_step_shows_its_log_and_leaves_no_layer(oci):
    with pytest.raises(skiff.exception.ImageBuildError) as info:
        run_sync(build_image(run_sync(get_client()), FAILING, show_progress=False))
    message = str(info.value)
    assert "step 2 (run_commands echo about to fail; exit 3)" in message
    assert "exit code: 3" in message and "about to fail" in message
    layers = oci.home / "images" / "layers"
    failed_id = layer_ids(FAILING.to_wire())[-1]
    assert not (layers / failed_id).exists()
    assert not [p for p in layers.iterdir() if p.name.startswith(f".tmp-{failed_id}")]


def test_unchanged_image_is_a_lookup_and_a_change_rebuilds_only_later_steps(oci):
    token = secrets.token_hex(4)
    first = skiff.Image.debian_slim().run_commands(f"echo {token} > /one").run_commands("echo two")
    second = skiff.Image.debian_slim().run_commands(f"echo {token} > /one").run_commands("echo three")
    built = run_sync(_events(first.to_wire()))
    assert [e["index"] for e in built if e["type"] == "step"] == [1, 2]

    started = time.monotonic()
    again = run_sync(_events(first.to_wire()))
    assert time.monotonic() - started < 1.0
    assert again == []

    changed = run_sync(_events(second.to_wire()))
    assert [e["index"] for e in changed if e["type"] == "cached"] == [0, 1]
    assert [e["index"] for e in changed if e["type"] == "step"] == [2]


def test_concurrent_builds_do_the_work_once(oci):
    image = skiff.Image.debian_slim().run_commands(f"echo {secrets.token_hex(4)}")

    async def both() -> list[list[dict]]:
        return list(await asyncio.gather(_events(image.to_wire()), _events(image.to_wire())))

    a, b = run_sync(both())
    assert [e for e in a if e["type"] == "step"] == [e for e in b if e["type"] == "step"]
    assert len([e for e in a if e["type"] == "step"]) == 1


def test_python_version_not_offered_names_what_is():
    with pytest.raises(skiff.exception.InvalidError,
                       match=r"offer 3.11 \(Debian 12, bookworm\), 3.13 \(Debian 13, trixie\)"):
        skiff.Image.debian_slim(python_version="3.12")
    with pytest.raises(skiff.exception.InvalidError, match="must look like '3.11'"):
        skiff.Image.debian_slim(python_version="three")


def test_python_3_13_comes_from_debian_13(oci):
    with app.run(show_logs=False):
        assert python_and_six.remote() == ((3, 13), "1.16.0")


def test_imports_context_skips_missing_modules_locally():
    with skiff.Image.debian_slim().imports():
        import a_module_that_is_only_in_the_image  # noqa: F401


def test_local_files_enter_the_layer_hash_by_content(tmp_path: Path):
    f = tmp_path / "data.txt"
    f.write_text("one")
    one = skiff.Image.debian_slim().add_local_file(f, "/data/data.txt", copy=True).to_wire()
    f.write_text("two")
    two = skiff.Image.debian_slim().add_local_file(f, "/data/data.txt", copy=True).to_wire()
    assert layer_ids(one)[-1] != layer_ids(two)[-1]

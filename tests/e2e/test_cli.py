"""The ``skiff`` command as a user runs it: a subprocess against the shared test server."""

from __future__ import annotations

import datetime
import re
import time

import httpx
import pytest

from tests.conftest import free_port, skiff_cli


def test_run_entrypoint(client_env):
    hello_run = skiff_cli("run", "examples/hello.py", "--n", "1000", env=client_env.env)
    assert hello_run.returncode == 0, hello_run.stderr
    lines = hello_run.stdout.splitlines()
    for value in ("49", "332833500", "81"):
        assert value in lines
    assert "[square] squaring 7" in lines and "[square] squaring 999" in lines
    assert "Traceback" not in hello_run.stderr


def test_run_one_function(client_env):
    result = skiff_cli("run", "examples/hello.py::square", "--x", "3", env=client_env.env)
    assert result.returncode == 0, result.stderr
    assert "9" in result.stdout.splitlines()
    assert "[square] squaring 3" in result.stdout


def test_run_quiet_hides_container_output(client_env):
    result = skiff_cli("run", "-q", "examples/hello.py::square", "--x", "4", env=client_env.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["16"]


def test_bad_target_lists_the_choices(client_env):
    result = skiff_cli("run", "examples/hello.py::nope", env=client_env.env)
    assert result.returncode == 2
    assert "no function or entrypoint 'nope'" in result.stderr and "main, square" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file(client_env):
    result = skiff_cli("run", "examples/nope.py", env=client_env.env)
    assert result.returncode == 2 and "no such file" in result.stderr


def test_missing_required_parameter_is_a_usage_error(client_env):
    result = skiff_cli("run", "examples/hello.py::square", env=client_env.env)
    assert result.returncode != 0 and "--x" in result.stderr and "Traceback" not in result.stderr


def test_usage_meters_container_time_per_function(client_env):
    started = time.time()
    ran = skiff_cli("run", "-q", "examples/hello.py::square", "--x", "6", env=client_env.env)
    assert ran.returncode == 0, ran.stderr
    took = time.time() - started
    since = datetime.datetime.fromtimestamp(started).isoformat()  # only this run's containers
    report = skiff_cli("usage", "--since", since, "--app", "hello", env=client_env.env)
    assert report.returncode == 0, report.stderr
    row = next(line for line in report.stdout.splitlines() if "square" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[:2] == ["hello", "square"] and int(cells[2]) >= 1
    value, unit = cells[3].split()
    assert unit == "s" and 0 < float(value) <= took * int(cells[2])  # metered only while containers ran
    bad = skiff_cli("usage", "--since", "last week", env=client_env.env)
    assert bad.returncode == 2 and "neither a span back from now" in bad.stderr


def test_app_list_and_logs(client_env):
    ran = skiff_cli("run", "-q", "examples/hello.py::square", "--x", "5", env=client_env.env)
    assert ran.returncode == 0, ran.stderr
    listing = skiff_cli("app", "list", env=client_env.env)
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"\bhello\b", listing.stdout) and "stopped" in listing.stdout
    logs = skiff_cli("app", "logs", "hello", env=client_env.env)  # the newest app named hello
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == ["[square] squaring 5"]


def test_app_list_shows_whole_app_ids(client_env):
    apps = httpx.get(client_env.url + "/v1/apps", headers={"Authorization": f"Bearer {client_env.token()}"}).json()
    assert apps, "no apps on the server"
    listing = skiff_cli("app", "list", env=client_env.env)
    assert apps[0]["app_id"] in listing.stdout  # ids are what `skiff app stop` takes


def test_app_commands_on_unknown_app(client_env):
    for args in (("app", "logs", "no-such-app"), ("app", "stop", "no-such-app")):
        result = skiff_cli(*args, env=client_env.env)
        assert result.returncode == 1 and "skiff app list" in result.stderr
        assert "Traceback" not in result.stderr


def test_server_not_running(client_env):
    env = dict(client_env.env, SKIFF_SERVER_URL=f"http://127.0.0.1:{free_port()}")
    for args in (("run", "examples/hello.py"), ("app", "list")):
        result = skiff_cli(*args, env=env)
        assert result.returncode == 1
        assert "skiff server start" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [("app", "list"), ("run", "examples/hello.py::square", "--x", "2")])
def test_wrong_token_is_a_clear_error(client_env, args):
    result = skiff_cli(*args, env=dict(client_env.env, SKIFF_TOKEN="wrong"))
    assert result.returncode == 1
    assert "wrong API token" in result.stderr
    assert "Traceback" not in result.stderr and "httpx" not in result.stderr


@pytest.mark.parametrize("args", [("--help",), ("run", "--help"), ("app", "--help"), ("server", "--help")])
def test_help(args):
    result = skiff_cli(*args, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: skiff")


def test_an_async_entrypoint_is_awaited(client_env):
    """`async def` under @app.local_entrypoint() runs to the end, with .aio calls inside."""
    result = skiff_cli("run", "tests/apps/async_entry_app.py", "--n", "5", env=client_env.env)
    assert result.returncode == 0, result.stderr
    assert "remote 49 sum 30" in result.stdout, result.stdout + result.stderr

"""App lifecycle: an ephemeral app whose client dies is stopped; `skiff app stop` stops one."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest

from skiff.exception import NotFoundError
from tests.apps import core_app
from tests.conftest import ROOT, container_pids, skiff_cli

CLIENT = """
import time
from tests.apps import core_app
with core_app.app.run(show_logs=False):
    print(core_app.square.remote(3), core_app.square.object_id, flush=True)
    time.sleep(600)
"""


@pytest.fixture
def api(client_env):
    with httpx.Client(base_url=client_env.url + "/v1", timeout=10,
                      headers={"Authorization": f"Bearer {client_env.token()}"}) as client:
        yield client


def new_app(api, before: set[str]) -> dict:
    [app] = [a for a in api.get("/apps").json() if a["app_id"] not in before and a["name"] == core_app.app.name]
    return app


def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def test_killed_client_stops_its_app(client_env, api):
    before = {a["app_id"] for a in api.get("/apps").json()}
    proc = subprocess.Popen([sys.executable, "-c", CLIENT], cwd=ROOT, env=client_env.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, f"client exited: {proc.stderr.read()}"
        result, function_id = line.split()
        assert result == "9"
        app = new_app(api, before)
        assert app["state"] == "ephemeral" and app["containers"] >= 1
        assert container_pids(function_id)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()

    def stopped():
        [info] = api.get(f"/apps/{app['app_id']}").json()
        return info if info["state"] == "stopped" else None

    info = wait_for(stopped, timeout=4 + 5)  # the shared server's heartbeat timeout is 4 s
    assert info, f"app {app['app_id']} still running after its client was killed"
    assert info["containers"] == 0 and info["stopped_at"]
    assert wait_for(lambda: not container_pids(function_id), timeout=5)


def test_skiff_app_stop(client_env, api):
    before = {a["app_id"] for a in api.get("/apps").json()}
    with core_app.app.run(show_logs=False):
        assert core_app.square.remote(4) == 16
        app = new_app(api, before)
        function_id = core_app.square.object_id
        result = skiff_cli("app", "stop", app["app_id"], env=client_env.env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"stopped {app['app_id']}"
        [info] = api.get(f"/apps/{app['app_id']}").json()
        assert info["state"] == "stopped" and info["containers"] == 0
        assert wait_for(lambda: not container_pids(function_id), timeout=5)
        with pytest.raises(NotFoundError, match="stopped"):
            core_app.square.remote(5)


def test_stopping_a_stopped_app_is_harmless(client_env, api):
    before = {a["app_id"] for a in api.get("/apps").json()}
    with core_app.app.run(show_logs=False):
        app = new_app(api, before)
    assert api.get(f"/apps/{app['app_id']}").json()[0]["state"] == "stopped"
    assert api.post(f"/apps/{app['app_id']}/stop").status_code == 200
    assert api.post(f"/apps/{app['app_id']}/heartbeat").status_code == 404


def test_skiff_app_stop_by_name(client_env, api):
    before = {a["app_id"] for a in api.get("/apps").json()}
    with core_app.app.run(show_logs=False):
        app = new_app(api, before)
        result = skiff_cli("app", "stop", core_app.app.name, env=client_env.env)
        assert result.returncode == 0 and app["app_id"] in result.stdout
    assert api.get(f"/apps/{app['app_id']}").json()[0]["state"] == "stopped"


def test_a_stopping_server_answers_the_long_polls_it_cuts_off(tmp_path, database_url):
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import ServerProcess

    server = ServerProcess(tmp_path / "home", database_url).start()
    api = httpx.Client(base_url=server.url + "/v1", headers={"Authorization": f"Bearer {server.token()}"}, timeout=60)
    try:
        assert api.post("/queues/waits", json={"create_if_missing": True}).status_code == 200
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(api.get, "/queues/waits/get", params={"timeout": 55})
            time.sleep(0.5)
            server.stop()
            resp = waiting.result()
        assert resp.status_code == 503 and "shutting down" in resp.text
        assert "Traceback" not in server.log() and "Exception in ASGI application" not in server.log()
    finally:
        api.close()
        server.stop()

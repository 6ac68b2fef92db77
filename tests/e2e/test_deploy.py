"""Deploy and serve, end to end: deployments, the web gateway, schedules, rollback."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import skiff
from tests.conftest import ROOT, skiff_cli


def deploy(server, version: str) -> str:
    env = dict(server.env, WEB_APP_VERSION=version)
    result = skiff_cli("deploy", "web_app.py", env=env, cwd=ROOT / "tests" / "apps", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def runners(app: str, name: str) -> int:
    return skiff.Function.from_name(app, name).get_current_stats().num_total_runners


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, database_url):
    from tests.conftest import ServerProcess

    server = ServerProcess(tmp_path_factory.mktemp("deploy-home"), database_url).start()
    yield server
    server.stop()


@pytest.fixture
def web(deployed, point_client_at):
    return point_client_at(deployed)


def test_seed_example_deploys_answers_through_the_gateway_and_scales_to_zero(web):
    out = deploy(web, "v1")
    assert f"generate: {web.url}/webtest/generate" in out
    resp = httpx.post(f"{web.url}/webtest/generate", json={"prompt": "hello"}, timeout=60)
    assert resp.status_code == 200 and resp.json() == {"response": "olleh", "version": "v1"}
    assert runners("webtest", "generate") >= 1
    deadline = time.monotonic() + 20
    while runners("webtest", "generate") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runners("webtest", "generate") == 0
    listing = skiff_cli("app", "list", env=web.env).stdout
    assert "webtest" in listing and "deployed" in listing and "/webtest/generate" in listing


def test_other_kinds_of_endpoints(web):
    streamed = httpx.get(f"{web.url}/webtest/streamer/count/3", timeout=60)
    assert streamed.text == "0\n1\n2\n"
    classic = httpx.get(f"{web.url}/webtest/classic/a/b?q=1", timeout=60)
    assert classic.text == "wsgi /a/b q=1"
    missing = httpx.get(f"{web.url}/webtest/nope", timeout=10)  # a stranger learns nothing
    assert missing.status_code == 404 and "/webtest/generate" not in missing.text
    owner = httpx.get(f"{web.url}/webtest/nope", timeout=10, headers={"Authorization": f"Bearer {web.token()}"})
    assert owner.status_code == 404 and "/webtest/generate" in owner.text


def test_websockets_reach_an_asgi_app(web):
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{web.port}/webtest/streamer/ws", open_timeout=60) as ws:
        ws.send("hello")
        assert ws.recv(timeout=30) == "echo: hello"
        ws.send("again")
        assert ws.recv(timeout=30) == "echo: again"
        ws.send("bye")


def test_proxy_auth(web):
    assert httpx.get(f"{web.url}/webtest/private", timeout=30).status_code == 401
    token = skiff_cli("token", "create", env=web.env)
    assert token.returncode == 0, token.stderr
    lines = dict(line.split(": ", 1) for line in token.stdout.strip().splitlines())
    ok = httpx.get(f"{web.url}/webtest/private", headers=lines, timeout=60)
    assert ok.status_code == 200 and ok.json() == {"secret": "data"}
    wrong = httpx.get(f"{web.url}/webtest/private", headers={**lines, "Skiff-Secret": "nope"}, timeout=30)
    assert wrong.status_code == 401
    modal_names = {"Modal-Key": lines["Skiff-Key"], "Modal-Secret": lines["Skiff-Secret"]}
    assert httpx.get(f"{web.url}/webtest/private", headers=modal_names, timeout=30).status_code == 200
    listed = skiff_cli("token", "list", env=web.env)
    assert lines["Skiff-Key"] in listed.stdout and lines["Skiff-Secret"] not in listed.stdout
    deleted = skiff_cli("token", "delete", lines["Skiff-Key"], env=web.env)
    assert deleted.returncode == 0, deleted.stderr
    # Revoked at once, though the pair had just been verified (and is otherwise remembered).
    assert httpx.get(f"{web.url}/webtest/private", headers=lines, timeout=30).status_code == 401
    again = skiff_cli("token", "delete", lines["Skiff-Key"], env=web.env)
    assert again.returncode == 1 and "no proxy token with key" in again.stderr


def test_deployed_functions_are_found_by_name(web):
    assert skiff.Function.from_name("webtest", "plain").remote(41) == 42
    counter = skiff.Cls.from_name("webtest", "Counter")
    assert counter(start=10).add.remote(5) == 15 and counter().add.remote(1) == 1
    with pytest.raises(skiff.exception.NotFoundError, match="it has: .*plain"):
        skiff.Function.from_name("webtest", "nope").remote(1)
    with pytest.raises(skiff.exception.NotFoundError, match="deployed apps: .*webtest"):
        skiff.Function.from_name("no-such-app", "f").remote(1)
    assert skiff.Function.from_name("webtest", "generate").get_web_url() == f"{web.url}/webtest/generate"


def test_a_period_schedule_fires_repeatedly(web):
    deadline = time.monotonic() + 20
    runs: list = []
    while time.monotonic() < deadline:
        runs = [r for r in httpx.get(f"{web.url}/v1/deployed/webtest/history", timeout=10,
                                     headers={"Authorization": f"Bearer {web.token()}"}).json()["schedule_runs"]
                if r["function"] == "tick"]
        if len(runs) >= 3:
            break
        time.sleep(0.5)
    assert len(runs) >= 3


def test_redeploy_and_rollback_change_the_endpoint(web):
    def version() -> str:
        return httpx.post(f"{web.url}/webtest/generate", json={"prompt": "x"}, timeout=60).json()["version"]

    deploy(web, "v2")
    assert version() == "v2"
    rolled = skiff_cli("app", "rollback", "webtest", env=web.env)
    assert rolled.returncode == 0, rolled.stderr
    assert version() == "v1"
    history = skiff_cli("app", "history", "webtest", env=web.env).stdout
    assert "✓" in history


def test_requests_in_flight_finish_on_the_old_version_during_a_redeploy(web):
    deploy(web, "old")
    url = f"{web.url}/webtest/slow-page"
    assert httpx.get(url, params={"seconds": 0}, timeout=60).json()["version"] == "old"  # warm

    def slow_request() -> tuple[dict, float]:
        resp = httpx.get(url, params={"seconds": 10}, timeout=60)
        return resp.json(), time.monotonic()

    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(slow_request)
        time.sleep(1)
        deploy(web, "new")
        redeployed = time.monotonic()
        answer, answered = in_flight.result()
    assert answered > redeployed, "the slow request ended before the redeploy: the test proves nothing"
    assert answer == {"waited": 10.0, "version": "old"}
    assert httpx.get(url, params={"seconds": 0}, timeout=60).json()["version"] == "new"


def test_deployed_apps_survive_a_server_restart(web):
    web.stop()
    web.start()
    resp = httpx.post(f"{web.url}/webtest/generate", json={"prompt": "ab"}, timeout=60)
    assert resp.status_code == 200 and resp.json()["response"] == "ba"

"""The web gateway's edges: requests in flight scale a function out, and a request that
times out, loses its container or hits an app error gets a clear answer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import skiff
from tests.conftest import ROOT, ServerProcess, skiff_cli


@pytest.fixture(scope="module")
def edge(tmp_path_factory, database_url):
    server = ServerProcess(tmp_path_factory.mktemp("web-edge-home"), database_url).start()
    deployed = skiff_cli("deploy", "web_edge_app.py", env=server.env, cwd=ROOT / "tests" / "apps", timeout=600)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    yield server
    server.stop()


def test_requests_in_flight_scale_a_sequential_endpoint_out(edge):
    # One request at a time per container: three slow requests at once need three.
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: httpx.get(f"{edge.url}/webedge/slow?seconds=2", timeout=60), range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert len({a.json()["container"] for a in answers}) == 3


def test_a_request_past_its_timeout_is_answered_504(edge):
    resp = httpx.get(f"{edge.url}/webedge/overtime", timeout=60)
    assert resp.status_code == 504 and "overtime: timed out after 2 s (timeout=2)" in resp.text


def test_a_container_dying_mid_request_is_answered_502(edge):
    resp = httpx.get(f"{edge.url}/webedge/crash", timeout=60)
    assert resp.status_code == 502 and "crash: the container serving this request died" in resp.text


def test_a_response_cut_off_by_a_dying_container_reaches_the_caller_cut_off(edge):
    with pytest.raises(httpx.RemoteProtocolError):  # not a complete-looking short body
        httpx.get(f"{edge.url}/webedge/breaking/", timeout=60)


def test_an_app_error_is_answered_500_and_its_traceback_logged(edge):
    resp = httpx.get(f"{edge.url}/webedge/broken", timeout=60)
    assert resp.status_code == 500
    assert httpx.get(f"{edge.url}/webedge/broken", timeout=60).status_code == 500  # the connection stays usable
    logs = skiff_cli("app", "logs", "webedge", env=edge.env)
    text = logs.stdout + logs.stderr
    assert 'web_edge_app.py", line' in text and 'raise ValueError("boom")' in text and "ValueError: boom" in text


def test_a_web_server_is_reached_through_the_gateway(edge):
    resp = httpx.get(f"{edge.url}/webedge/files/hello.txt", timeout=60)
    assert resp.status_code == 200 and resp.text == "served by http.server\n"


def test_a_fastapi_endpoint_takes_calls_and_a_web_app_explains_why_not(edge, point_client_at):
    point_client_at(edge)
    assert skiff.Function.from_name("webedge", "slow").remote(0)["container"].startswith("ta-")
    with pytest.raises(skiff.exception.InvalidError, match="files is a @skiff.web_server web app"):
        skiff.Function.from_name("webedge", "files").remote()


def test_the_web_example_deploys_and_answers(edge):
    deployed = skiff_cli("deploy", "examples/web.py", env=edge.env, timeout=600)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert f"generate: {edge.url}/web-example/generate" in deployed.stdout and "heartbeat: next run" in deployed.stdout
    answer = httpx.post(f"{edge.url}/web-example/generate", json={"prompt": "hello"}, timeout=60)
    assert answer.json() == {"response": "olleh"}
    assert httpx.get(f"{edge.url}/web-example/chat/stream/3", timeout=60).text == "line 0\nline 1\nline 2\n"
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{edge.port}/web-example/chat/ws", open_timeout=60) as ws:
        ws.send("hi")
        assert ws.recv(timeout=30) == "echo: hi"
        ws.send("bye")


PROCESS_APP = '''
import skiff

app = skiff.App("procweb")


@app.function()
@skiff.fastapi_endpoint()
def hi(name: str = "x") -> dict:
    return {"hi": name}
'''


def test_web_endpoints_on_the_process_runtime(tmp_path, database_url):
    """The process runtime mounts nothing: the container's socket is a path on the host
    (here in a private /tmp directory, the test home's path being too long for one)."""
    (tmp_path / "procweb.py").write_text(PROCESS_APP)
    server = ServerProcess(tmp_path / "home", database_url, env={"SKIFF_RUNTIME": "process"}).start()
    try:
        assert httpx.get(f"{server.url}/v1/health", timeout=10).json()["runtime"] == "process"
        deployed = skiff_cli("deploy", "procweb.py", env=server.env, cwd=tmp_path, timeout=120)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert httpx.get(f"{server.url}/procweb/hi?name=proc", timeout=60).json() == {"hi": "proc"}
    finally:
        server.stop()

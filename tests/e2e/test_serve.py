"""`skiff serve` live reload, and the gateway's answer to long requests."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import ROOT, ServerProcess, skiff_cli

APP = '''
import skiff

app = skiff.App("servetest")


@app.function()
@skiff.wsgi_app()
def hello():
    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"GREETING"]

    return application
'''


def _get(url: str) -> str | None:
    try:
        return httpx.get(url, timeout=10).text
    except httpx.HTTPError:
        return None


def test_serve_reloads_when_the_file_changes(client_env, tmp_path):
    app_file = tmp_path / "serve_app.py"
    app_file.write_text(APP.replace("GREETING", "hello v1"))
    proc = subprocess.Popen([sys.executable, "-m", "skiff.cli", "serve", str(app_file), "--interval", "0.2"],
                            env=client_env.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"{client_env.url}/servetest/hello"
    try:
        deadline = time.monotonic() + 60
        while _get(url) != "hello v1":
            assert time.monotonic() < deadline and proc.poll() is None, "serve never answered"
            time.sleep(0.2)
        app_file.write_text(APP.replace("GREETING", "hello v2"))
        changed = time.monotonic()
        while _get(url) != "hello v2":
            assert time.monotonic() - changed < 30 and proc.poll() is None, "serve did not reload"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "reloading" in out and "stopped" in out


def test_a_long_request_is_redirected_to_wait_again(tmp_path, database_url):
    server = ServerProcess(tmp_path / "home", database_url, env={"SKIFF_WEB_RESPONSE_DEADLINE": "2"}).start()
    try:
        deployed = skiff_cli("deploy", "web_app.py", env=server.env, cwd=ROOT / "tests" / "apps", timeout=600)
        assert deployed.returncode == 0, deployed.stderr
        first = httpx.get(f"{server.url}/webtest/slow-page?seconds=8", timeout=30)
        assert first.status_code == 303 and "__skiff_call=" in first.headers["location"]
        # One caller at a time waits on a redirected request: a second one is told so.
        with ThreadPoolExecutor(2) as pool:
            waiting = pool.submit(httpx.get, server.url + first.headers["location"], timeout=30)
            time.sleep(0.3)
            second = httpx.get(server.url + first.headers["location"], timeout=30)
            answers = sorted([waiting.result(), second], key=lambda r: r.status_code)
        assert [r.status_code for r in answers][-1] == 409 and "already waiting" in answers[-1].text
        assert answers[0].status_code == 303  # the page takes 8 s: still not done
        # A caller that hangs up while waiting does not keep the response from the next.
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(server.url + first.headers["location"], timeout=0.5)
        time.sleep(0.2)
        again = httpx.get(server.url + first.headers["location"], timeout=30, follow_redirects=True)
        assert again.status_code == 200 and again.json() == {"waited": 8.0, "version": "v1"}
        followed = httpx.get(f"{server.url}/webtest/slow-page?seconds=3", timeout=60, follow_redirects=True)
        assert followed.status_code == 200 and followed.json() == {"waited": 3.0, "version": "v1"}
    finally:
        server.stop()



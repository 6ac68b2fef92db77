"""Shared fixtures. End-to-end tests talk to a real ``skiff server`` subprocess with a
scratch ``SKIFF_HOME``; ``--postgres`` points that server at a real PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import skiff
from skiff import _client, _local_server
from skiff._sync import run_sync

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--postgres", action="store_true", help="run the server on a throwaway PostgreSQL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def _no_mounts_left_behind(tmp_path_factory: pytest.TempPathFactory):
    """Servers clean up their containers' mounts when they stop; if one was killed
    instead, unmount what it left so pytest can delete its temporary directories."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    with open("/proc/self/mounts") as f:
        leftovers = [line.split()[1] for line in f if line.split()[1].startswith(base)]
    for target in sorted(leftovers, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if not request.config.getoption("--postgres"):
        yield None
        return
    from .postgres import PostgresServer

    pg = PostgresServer(free_port())
    url = pg.start()
    yield url
    pg.stop()


IMAGE_CACHE = Path(os.environ.get("SKIFF_TEST_IMAGE_CACHE", "/var/tmp/skiff-test-images"))


class ServerProcess:
    """A ``skiff server`` subprocess with its own home directory and port.

    Every test server shares one image layer cache (``SKIFF_TEST_IMAGE_CACHE``), so the
    base image is built once per machine rather than once per server.
    """

    def __init__(self, home: Path, database_url: str | None, env: dict[str, str] | None = None) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
        if not (home / "images").exists():
            (home / "images").symlink_to(IMAGE_CACHE)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, SKIFF_HOME=str(home), SKIFF_SERVER_URL=self.url, **(env or {}))
        self.env.pop("SKIFF_TOKEN", None)
        if database_url:
            self.env["SKIFF_DATABASE_URL"] = database_url
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        with open(self.home / "test-server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "skiff.cli", "server", "start", "--foreground", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=log,
            )
        deadline = time.monotonic() + 30
        while not _local_server.is_healthy(self.url, timeout=0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("test server did not start:\n" + self.log())
            time.sleep(0.05)
        return self

    def log(self) -> str:
        path = self.home / "test-server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def token(self) -> str:
        return (self.home / "token").read_text().strip()


def _point_client_at(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIFF_HOME", str(server.home))
    monkeypatch.setenv("SKIFF_SERVER_URL", server.url)
    monkeypatch.delenv("SKIFF_TOKEN", raising=False)
    run_sync(_client.reset_client())


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, database_url: str | None):
    """One server shared by the end-to-end tests (each test makes its own app)."""
    srv = ServerProcess(tmp_path_factory.mktemp("skiff-home"), database_url,
                        env={"SKIFF_APP_HEARTBEAT_TIMEOUT": "4"}).start()
    yield srv
    srv.stop()


@pytest.fixture
def client_env(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    """Point this test's SDK calls (and any subprocess it starts) at the shared server."""
    _point_client_at(server, monkeypatch)
    yield server
    run_sync(_client.reset_client())


@pytest.fixture
def fresh_server(tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch):
    """A server of the test's own, for tests that restart or break it."""
    srv = ServerProcess(tmp_path / "home", database_url,
                        env={"SKIFF_APP_HEARTBEAT_TIMEOUT": "3", "SKIFF_VOLUME_GC_GRACE": "5"})
    srv.start()
    _point_client_at(srv, monkeypatch)
    yield srv
    run_sync(_client.reset_client())
    srv.stop()


@pytest.fixture
def point_client_at(monkeypatch: pytest.MonkeyPatch):
    """Point this test's SDK calls at a server of the test module's own."""

    def point(server: ServerProcess) -> ServerProcess:
        _point_client_at(server, monkeypatch)
        return server

    yield point
    run_sync(_client.reset_client())


def container_pids(function_id: str) -> list[int]:
    """Host pids of the processes in a function's containers, whatever the runtime: the
    in-container runtime carries SKIFF_FUNCTION_ID in its environment."""
    needle = f"SKIFF_FUNCTION_ID={function_id}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def skiff_cli(*args: str, env: dict[str, str], timeout: float = 60, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "skiff.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


assert skiff.__version__

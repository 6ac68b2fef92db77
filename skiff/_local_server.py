"""The embedded default: start a local ``skiff server`` in the background when none answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .exception import ConnectionError
from .protocol import config

START_TIMEOUT = 30.0


def pid_path() -> Path:
    return config.home() / "server.pid"


def log_path() -> Path:
    return config.home() / "server.log"


def is_healthy(url: str | None = None, timeout: float = 1.0) -> bool:
    url = (url or config.server_url()).rstrip("/") + "/v1/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status: int = resp.status  # urlopen's answer is untyped (Any) in typeshed
            return status == 200
    except (urllib.error.URLError, OSError):
        return False


def health(url: str | None = None) -> dict[str, Any]:
    """The server's /v1/health answer (version, runtime, notes), or {} if it does not answer."""
    import json

    url = (url or config.server_url()).rstrip("/") + "/v1/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
            return answer
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def start_background(host: str = config.DEFAULT_HOST, port: int = config.DEFAULT_PORT) -> int:
    """Start ``skiff server start --foreground`` detached; return its pid once healthy."""
    home = config.home()
    home.mkdir(parents=True, exist_ok=True)
    log = os.fdopen(os.open(log_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
    os.chmod(log_path(), 0o600)  # the log may name secrets' keys, apps and endpoints
    proc = subprocess.Popen(
        [sys.executable, "-m", "skiff.cli", "server", "start", "--foreground", "--host", host, "--port", str(port)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=dict(os.environ),
    )
    pid_path().write_text(str(proc.pid))
    deadline = time.monotonic() + START_TIMEOUT
    url = f"http://{host}:{port}"
    while time.monotonic() < deadline:
        if is_healthy(url, timeout=0.5):
            return proc.pid
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = log_path().read_text(errors="replace")[-2000:] if log_path().exists() else ""
    raise ConnectionError(f"the local skiff server did not start; its log ({log_path()}) ends with:\n{tail}")


def ensure_running() -> None:
    if is_healthy():
        return
    start_background()


def running_pid() -> int | None:
    try:
        pid = int(pid_path().read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None

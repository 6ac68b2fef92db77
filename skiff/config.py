"""Where skiff keeps its files and how a client finds its server.

Every setting has an environment variable, so tests and CI can point a whole process
tree at a scratch directory with ``SKIFF_HOME``.

| variable | default | meaning |
|---|---|---|
| ``SKIFF_HOME`` | ``~/.skiff`` | state: database, blobs, token, server log |
| ``SKIFF_SERVER_URL`` | ``http://127.0.0.1:7171`` | the control plane the client talks to |
| ``SKIFF_TOKEN`` | contents of ``$SKIFF_HOME/token`` | the API token |
| ``SKIFF_DATABASE_URL`` | SQLite in ``$SKIFF_HOME`` | any SQLAlchemy URL; PostgreSQL is tested |
| ``SKIFF_RUNTIME`` | ``process`` | how containers run |
| ``SKIFF_AUTOSTART`` | ``1`` | start a local server when none answers |
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_PORT = 7171
DEFAULT_HOST = "127.0.0.1"


def home() -> Path:
    return Path(os.environ.get("SKIFF_HOME") or Path.home() / ".skiff")


def server_url() -> str:
    return os.environ.get("SKIFF_SERVER_URL") or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


def is_default_server() -> bool:
    """True when the client would talk to the embedded local server it may start itself."""
    return "SKIFF_SERVER_URL" not in os.environ


def autostart_enabled() -> bool:
    return os.environ.get("SKIFF_AUTOSTART", "1") not in ("0", "false", "no")


def token_path() -> Path:
    return home() / "token"


def read_token() -> str | None:
    token = os.environ.get("SKIFF_TOKEN")
    if token:
        return token
    try:
        return token_path().read_text().strip() or None
    except FileNotFoundError:
        return None


def database_url() -> str:
    return os.environ.get("SKIFF_DATABASE_URL") or f"sqlite:///{home() / 'skiff.db'}"

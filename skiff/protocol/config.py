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
| ``SKIFF_GATEWAY_URL`` | the server URL | the base URL printed for web endpoints |
| ``SKIFF_WEB_DOMAIN`` | unset | also route ``<app>--<label>.<domain>`` host names |
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


def gateway_url() -> str:
    """Where web endpoints answer: ``SKIFF_GATEWAY_URL``, else the server's own address."""
    return (os.environ.get("SKIFF_GATEWAY_URL") or server_url()).rstrip("/")


def web_domain() -> str | None:
    """With ``SKIFF_WEB_DOMAIN=example.com``, ``<app>--<label>.example.com`` routes too."""
    return os.environ.get("SKIFF_WEB_DOMAIN") or None


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

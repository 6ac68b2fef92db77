"""A tiny keep-alive JSON client over ``http.client`` for the container's few routes."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse
from typing import Any


class ServerGone(Exception):
    pass


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the Unix socket the oci runtime mounts at /run/skiff/api.sock."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class ContainerClient:
    def __init__(self, server_url: str, token: str, function_id: str, container_id: str) -> None:
        url = urllib.parse.urlsplit(server_url)
        self._unix = url.path if url.scheme == "unix" else None
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or 80
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._prefix = f"/v1/functions/{function_id}/containers/{container_id}"
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._unix:
                self._conn = _UnixConnection(self._unix, timeout=90)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=90)
        return self._conn

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                absolute: bool = False, attempts: int = 30) -> Any:
        """One request, retried across reconnects for ~30 s before giving up."""
        url = path if absolute else self._prefix + path
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = dict(self._headers)
        if raw is not None:
            headers["Content-Type"] = "application/octet-stream"
        for attempt in range(attempts):
            try:
                conn = self._connection()
                conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException):
                self.close()
                time.sleep(min(1.0, 0.05 * 2**attempt))
                continue
            if resp.status >= 400:
                raise RuntimeError(f"skiff server answered {resp.status} to {method} {url}: {payload[:500]!r}")
            if resp.headers.get("content-type", "").startswith("application/json"):
                return json.loads(payload) if payload else None
            return payload
        where = self._unix or f"{self._host}:{self._port}"
        raise ServerGone(f"skiff server at {where} stopped answering")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

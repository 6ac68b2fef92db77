"""Blocking HTTP over ``http.client``, to TCP or to a Unix socket (``unix:///path``).

Standard library only: the in-container runtime uses it, and so does the SDK when it
runs inside a container, where httpx may not be installed in the user's image.
"""

from __future__ import annotations

import http.client
import os
import socket
import time
import urllib.parse


class ServerGone(Exception):
    """The server stopped answering, across reconnects."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class BlockingHTTP:
    """One keep-alive connection; not thread-safe (use one per thread)."""

    def __init__(self, server_url: str, token: str | None, timeout: float = 90.0) -> None:
        url = urllib.parse.urlsplit(server_url)
        self._unix = url.path if url.scheme == "unix" else None
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or 80
        self._timeout = timeout
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._conn: http.client.HTTPConnection | None = None

    @property
    def where(self) -> str:
        return self._unix or f"{self._host}:{self._port}"

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._unix:
                self._conn = _UnixConnection(self._unix, timeout=self._timeout)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        return self._conn

    def send(self, method: str, url: str, body: bytes | None = None, content_type: str = "application/json",
             attempts: int = 30) -> tuple[int, str, bytes]:
        """(status, content type, body), retried across reconnects before giving up."""
        headers = dict(self._auth)
        if body is not None:
            headers["Content-Type"] = content_type
        for attempt in range(attempts):
            try:
                conn = self._connection()
                conn.request(method, url, body=body, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.headers.get("content-type", ""), resp.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt + 1 < attempts:
                    time.sleep(min(1.0, 0.05 * 2**attempt))
        raise ServerGone(f"skiff server at {self.where} stopped answering")

    def put_body(self, url: str, body: bytes | memoryview) -> tuple[int, str, bytes]:
        """PUT a body held in memory, sent as it is (a memoryview is not copied)."""
        return self._once("PUT", url, body, "application/octet-stream", "uploading to")

    def fetch_into(self, url: str, fd: int, offset: int, buffer: bytearray) -> tuple[int, str, bytes]:
        """GET a body straight into an open file at ``offset``, through ``buffer``; the
        body's length is returned in place of the body. On an error status, the error
        body instead."""
        try:
            conn = self._connection()
            conn.request("GET", url, headers=dict(self._auth))
            resp = conn.getresponse()
            if resp.status >= 400:
                return resp.status, resp.headers.get("content-type", ""), resp.read()
            view = memoryview(buffer)
            written = held = 0
            while True:  # fill the buffer, then write it at once: few large writes are cheaper
                n = resp.readinto(view[held:])
                held += n
                if held == len(view) or (n == 0 and held):
                    part = view[:held]
                    while part:
                        done = os.pwrite(fd, part, offset + written)
                        part = part[done:]
                        written += done
                    held = 0
                if n == 0:
                    break
            return resp.status, resp.headers.get("content-type", ""), str(written).encode()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ServerGone(f"downloading from the skiff server at {self.where} failed: {exc}") from exc

    def _once(self, method: str, url: str, body: bytes | memoryview, ctype: str, doing: str) -> tuple[int, str, bytes]:
        headers = {**self._auth, "Content-Type": ctype}
        try:
            conn = self._connection()
            conn.request(method, url, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.headers.get("content-type", ""), resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ServerGone(f"{doing} the skiff server at {self.where} failed: {exc}") from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

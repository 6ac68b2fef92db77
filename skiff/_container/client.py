"""The container's client for its own routes (``/v1/functions/<id>/containers/<id>``):
one method per route, taking and returning the wire messages of :mod:`skiff.protocol.wire`."""

from __future__ import annotations

import json
from typing import Any

from ..protocol.http import BlockingHTTP, ServerGone
from ..protocol.wire import (
    API_PREFIX,
    ContainerExchange,
    ContainerHello,
    ContainerOutput,
    ContainerSignals,
    ContainerWork,
    decode,
    encode,
)

__all__ = ["ContainerClient", "ServerGone"]


class ContainerClient:
    """One keep-alive connection; not thread-safe (each thread makes its own)."""

    def __init__(self, server_url: str, token: str, function_id: str, container_id: str) -> None:
        self._http = BlockingHTTP(server_url, token)
        self._prefix = f"{API_PREFIX}/functions/{function_id}/containers/{container_id}"

    def hello(self) -> ContainerHello:
        return decode(ContainerHello, self._json("GET", "/hello"))

    def exchange(self, outputs: list[ContainerOutput], want: int, timeout: float) -> ContainerWork:
        """Hand in ``outputs`` and wait up to ``timeout`` for up to ``want`` inputs."""
        msg = ContainerExchange(outputs=outputs, want=want, timeout=timeout)
        return decode(ContainerWork, self._json("POST", "/exchange", encode(msg)))

    def signals(self, timeout: float) -> ContainerSignals:
        return decode(ContainerSignals, self._json("GET", f"/signals?timeout={timeout:g}"))

    def init_failure(self, out: ContainerOutput) -> None:
        self._json("POST", "/init_failure", encode(out))

    def web_ready(self) -> None:
        self._json("POST", "/web_ready")

    def get_blob(self, blob_id: str) -> bytes:
        status, _ctype, body = self._http.send("GET", f"{API_PREFIX}/blobs/{blob_id}")
        self._check(status, "GET", f"/blobs/{blob_id}", body)
        return body

    def put_blob(self, blob_id: str, data: bytes) -> None:
        status, _ctype, body = self._http.send("PUT", f"{API_PREFIX}/blobs/{blob_id}", data, "application/octet-stream")
        self._check(status, "PUT", f"/blobs/{blob_id}", body)

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        status, ctype, payload = self._http.send(method, self._prefix + path, data)
        self._check(status, method, path, payload)
        return json.loads(payload) if payload and ctype.startswith("application/json") else None

    @staticmethod
    def _check(status: int, method: str, path: str, payload: bytes) -> None:
        if status >= 400:
            raise RuntimeError(f"skiff server answered {status} to {method} {path}: {payload[:500]!r}")

    def close(self) -> None:
        self._http.close()

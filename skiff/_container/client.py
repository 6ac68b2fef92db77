"""The container's JSON client for its own routes (``/v1/functions/<id>/containers/<id>``)."""

from __future__ import annotations

import json
from typing import Any

from .._http import BlockingHTTP, ServerGone

__all__ = ["ContainerClient", "ServerGone"]


class ContainerClient:
    def __init__(self, server_url: str, token: str, function_id: str, container_id: str) -> None:
        self._http = BlockingHTTP(server_url, token)
        self._prefix = f"/v1/functions/{function_id}/containers/{container_id}"

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                absolute: bool = False, attempts: int = 30) -> Any:
        url = path if absolute else self._prefix + path
        if raw is not None:
            status, ctype, payload = self._http.send(method, url, raw, "application/octet-stream", attempts)
        else:
            data = None if body is None else json.dumps(body).encode()
            status, ctype, payload = self._http.send(method, url, data, attempts=attempts)
        if status >= 400:
            raise RuntimeError(f"skiff server answered {status} to {method} {url}: {payload[:500]!r}")
        if ctype.startswith("application/json"):
            return json.loads(payload) if payload else None
        return payload

    def close(self) -> None:
        self._http.close()

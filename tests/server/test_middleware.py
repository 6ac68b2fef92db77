"""The server's two ASGI middlewares, on small apps of their own (no server process)."""

from __future__ import annotations

import asyncio
import json

from fastapi import FastAPI

from skiff.server.main import AllowedMethods, InternalErrors


async def _request(app, method: str, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [], "http_version": "1.1", "scheme": "http", "server": ("test", 80), "root_path": ""}
    scope["app"] = app
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start.get("headers", [])), body


def test_a_405_names_every_method_of_its_path():
    """Starlette names only the methods of the first route the path matches."""
    api = FastAPI()

    @api.put("/v1/blobs/{blob_id}")
    def put_blob(blob_id: str) -> dict:
        return {}

    @api.post("/v1/blobs/missing")
    def missing() -> dict:
        return {}

    api.add_middleware(AllowedMethods)
    status, headers, _ = asyncio.run(_request(api, "DELETE", "/v1/blobs/missing"))
    assert status == 405
    assert set(headers[b"allow"].decode().split(", ")) == {"POST", "PUT"}


def test_a_bug_is_a_500_with_its_class_and_message():
    async def broken(scope, receive, send):
        raise RuntimeError("the bug")

    status, headers, body = asyncio.run(_request(InternalErrors(broken), "GET", "/v1/x"))
    assert status == 500 and headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"code": "internal", "message": "the server failed: RuntimeError: the bug"}

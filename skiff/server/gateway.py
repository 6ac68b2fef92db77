"""The web gateway: HTTP requests to ``/<app>/<label>/...`` become inputs of the web
function's containers, and their responses stream back.

A request is an input like any other, so the autoscaler sees in-flight requests as
running inputs (``@skiff.concurrent(target_inputs=)`` included), and a request that
arrives while the function has no container simply waits in the queue while one starts.
Responses come back as a generator's items: first the status and headers, then body
chunks as the app produces them. The server never unpickles what a container sends: a
response travels as JSON and raw bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import os
import time
from typing import TYPE_CHECKING, Any

from .. import _serialization as ser
from .. import config
from .._wire import InputItem, Payload
from ..exception import Error, NotFoundError

if TYPE_CHECKING:
    from .control import ControlPlane

MAX_BODY = 64 * 1024 * 1024
# Seconds a request may wait for its response to start; then the caller is redirected to
# the same URL to wait again (Modal's answer to long requests). SKIFF_WEB_RESPONSE_DEADLINE
# shortens it for tests.
RESPONSE_DEADLINE = float(os.environ.get("SKIFF_WEB_RESPONSE_DEADLINE", "150"))
CALL_PARAM = "__skiff_call"


class Gateway:
    def __init__(self, get_control: Any) -> None:
        self._control = get_control  # the control plane exists only once the server started

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        cp: ControlPlane = self._control()
        if scope["type"] == "websocket":
            try:
                await self._websocket(cp, scope, receive, send)
            except Error:
                await send({"type": "websocket.close", "code": 1008})
            return
        try:
            await self._handle(cp, scope, receive, send)
        except Error as exc:
            await _plain(send, exc.http_status, str(exc))

    def _target(self, cp: ControlPlane, scope: dict) -> tuple[str, str, str]:
        """(app, label, path inside the app) from the host name or the path."""
        path = scope["path"]
        domain = config.web_domain()
        host = dict(scope["headers"]).get(b"host", b"").decode().split(":")[0]
        if domain and host.endswith("." + domain) and "--" in host[: -len(domain) - 1]:
            app, _, label = host[: -len(domain) - 1].partition("--")
            return app, label, path
        parts = path.lstrip("/").split("/", 2)
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise NotFoundError(self._listing(cp, "a web endpoint answers at /<app>/<label>"))
        return parts[0], parts[1], "/" + (parts[2] if len(parts) > 2 else "")

    def _listing(self, cp: ControlPlane, why: str) -> str:
        have = sorted(f"/{a}/{lbl}" for a, lbl in cp.deployments.routes)
        return f"{why}; endpoints here: {', '.join(have) or 'none'}"

    async def _handle(self, cp: ControlPlane, scope: dict, receive: Any, send: Any) -> None:
        app, label, inner = self._target(cp, scope)
        function_id = cp.deployments.routes.get((app, label))
        if function_id is None or function_id not in cp.runners:
            raise NotFoundError(self._listing(cp, f"no web endpoint /{app}/{label}"))
        runner = cp.runners[function_id]
        web = runner.spec.web or {}
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        if web.get("requires_proxy_auth") and not await self._authorized(cp, headers):
            await _plain(send, 401, "this endpoint requires proxy auth: send Skiff-Key and Skiff-Secret headers "
                                    "(create them with `skiff token create`)")
            return
        query = scope.get("query_string", b"").decode("latin-1")
        call_id = _call_param(query)
        if call_id is None:
            body = await _read_body(receive)
            request = {"method": scope["method"], "path": inner, "query_string": _strip_call(query),
                       "headers": headers, "body": body, "scheme": scope.get("scheme", "http"),
                       "client": list(scope.get("client") or ["", 0])}
            args = Payload(data=ser.b64(ser.serialize(((request,), {}))))
            call_id = await cp.create_call(function_id, "web", [InputItem(idx=0, args=args)], True)
        await self._respond(cp, call_id, scope, query, send)

    async def _websocket(self, cp: ControlPlane, scope: dict, receive: Any, send: Any) -> None:
        """A websocket session with an ASGI app: one input for its whole life. What the
        client sends goes to the input's inbox, which the container long-polls; what the
        app sends comes back as the input's output items."""
        app, label, inner = self._target(cp, scope)
        function_id = cp.deployments.routes.get((app, label))
        if function_id is None or function_id not in cp.runners:
            raise NotFoundError(f"no web endpoint /{app}/{label}")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        if (cp.runners[function_id].spec.web or {}).get("requires_proxy_auth") and not await self._authorized(cp, headers):
            await send({"type": "websocket.close", "code": 1008})
            return
        await receive()  # websocket.connect: the app accepts or refuses it
        request = {"type": "websocket", "path": inner, "query_string": scope.get("query_string", b"").decode("latin-1"),
                   "headers": headers, "client": list(scope.get("client") or ["", 0]),
                   "subprotocols": list(scope.get("subprotocols") or [])}
        args = Payload(data=ser.b64(ser.serialize(((request,), {}))))
        call_id = await cp.create_call(function_id, "web", [InputItem(idx=0, args=args)], True)
        input_id = f"{call_id}:0"
        inbox = cp.inboxes.setdefault(input_id, asyncio.Queue())
        inbox.put_nowait({"type": "websocket.connect"})

        async def client_to_app() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "websocket.disconnect":
                    inbox.put_nowait({"type": "websocket.disconnect", "code": msg.get("code", 1000)})
                    return
                item: dict = {"type": "websocket.receive"}
                if msg.get("text") is not None:
                    item["text"] = msg["text"]
                if msg.get("bytes") is not None:
                    item["bytes_b64"] = base64.b64encode(msg["bytes"]).decode()
                inbox.put_nowait(item)

        reader = asyncio.create_task(client_to_app())
        finished = False
        try:
            after = 0
            while not finished:
                res = await cp.outputs(call_id, after, 25.0)
                for out in res.outputs:
                    after = out.seq
                    if out.status != "success" or out.gen_done:
                        finished = True
                        break
                    msg = json.loads(base64.b64decode(out.result.data)) if out.result and out.result.data else {}
                    if "bytes_b64" in msg:
                        msg["bytes"] = base64.b64decode(msg.pop("bytes_b64"))
                    if "headers" in msg:
                        msg["headers"] = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in msg["headers"]]
                    await send(msg)
                    if msg.get("type") == "websocket.close":
                        finished = True
                        break
                finished = finished or res.done
        finally:
            reader.cancel()
            cp.inboxes.pop(input_id, None)
            if not finished:
                with contextlib.suppress(Error):
                    await cp.cancel(call_id)  # the client went away mid-session

    async def _authorized(self, cp: ControlPlane, headers: list[tuple[str, str]]) -> bool:
        got = {k.lower(): v for k, v in headers}
        key, secret = got.get("skiff-key"), got.get("skiff-secret")
        if not key or not secret:
            return False
        try:
            stored = await cp.store.run(cp.secrets.reveal, "__proxy-" + key, ["SECRET"])
        except (Error, ValueError):
            return False
        return hmac.compare_digest(stored["SECRET"].encode(), secret.encode())

    async def _respond(self, cp: ControlPlane, call_id: str, scope: dict, query: str, send: Any) -> None:
        deadline = time.monotonic() + RESPONSE_DEADLINE
        after, started = 0, False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not started:
                location = scope["path"] + "?" + "&".join(filter(None, [_strip_call(query), f"{CALL_PARAM}={call_id}"]))
                await send({"type": "http.response.start", "status": 303,
                            "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
            res = await cp.outputs(call_id, after, max(0.1, min(remaining, 25.0)) if not started else 25.0)
            for out in res.outputs:
                after = out.seq
                if out.status != "success":
                    if not started:
                        await _plain(send, 500, f"the web function failed: {out.exc_type}: {out.exc_message}")
                    else:
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                if out.gen_done:
                    if not started:
                        await _plain(send, 500, "the web function ended without a response")
                    else:
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                data = base64.b64decode(out.result.data) if out.result and out.result.data else b""
                if out.gen_index == 0:
                    head = json.loads(data)
                    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in head["headers"]]
                    await send({"type": "http.response.start", "status": int(head["status"]), "headers": raw})
                    started = True
                else:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            if res.done:
                if started:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                else:
                    await _plain(send, 502, "the web function gave no response")
                return


async def _read_body(receive: Any) -> bytes:
    chunks, size = [], 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise Error(f"request body over {MAX_BODY // (1024 * 1024)} MiB")
        chunks.append(chunk)
        if not msg.get("more_body"):
            break
    return b"".join(chunks)


def _call_param(query: str) -> str | None:
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == CALL_PARAM and value:
            return value
    return None


def _strip_call(query: str) -> str:
    return "&".join(p for p in query.split("&") if p and not p.startswith(CALL_PARAM + "="))


async def _plain(send: Any, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

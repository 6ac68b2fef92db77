"""The web gateway: HTTP requests to ``/<app>/<label>/...`` (or to a host named
``<app>--<label>.<domain>``) go straight to a container of the web function, over the
container's own socket (:mod:`.webproxy`), and the responses stream back as the app
produces them.

A request waits while the function has no container with room, and counts as backlog
for the autoscaler meanwhile; once sent, it counts as the container's running input.
A response that has not started after ``RESPONSE_DEADLINE`` seconds (150, as on Modal)
is answered with a redirect to the same URL plus a ``__skiff_call`` token, and the
request goes on in the background; following the redirect waits for it again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from ..protocol import config
from ..protocol.errors import Error, NotFoundError
from .proxy_tokens import credentials
from .webproxy import WebBalancer, WebError, WebExchange

if TYPE_CHECKING:
    from .control import ControlPlane
    from .scheduler import FunctionRunner

log = logging.getLogger("skiff.gateway")

MAX_BODY = 64 * 1024 * 1024
# Seconds a request may wait for its response to start; then the caller is redirected to
# the same URL to wait again (Modal's answer to long requests). SKIFF_WEB_RESPONSE_DEADLINE
# shortens it for tests.
RESPONSE_DEADLINE = float(os.environ.get("SKIFF_WEB_RESPONSE_DEADLINE", "150"))
CALL_PARAM = "__skiff_call"
PARKED_TTL = 600.0  # seconds a finished background request's response waits to be collected
PARKED_BYTES = 64 * 1024 * 1024  # body held for a collector; past it the request is given up


@dataclass(eq=False)
class Parked:
    """A request that outlived the response deadline, going on in the background. Its
    response is kept as events: ("head", dict), ("body", bytes, last), ("error", WebError)."""

    events: asyncio.Queue[tuple[Any, ...]] = field(default_factory=asyncio.Queue)
    held: int = 0  # body bytes in events, not yet collected
    task: asyncio.Task[None] | None = None
    claimed: bool = False  # a caller is waiting on it now


class Gateway:
    def __init__(self, get_control: Any) -> None:
        self._control = get_control  # the control plane exists only once the server started
        self._parked: dict[str, Parked] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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

    def _target(self, cp: ControlPlane, scope: Scope) -> tuple[FunctionRunner, WebBalancer, str]:
        """The web function's runner and the path inside its app, from the host name or
        the path."""
        path = scope["path"]
        domain = config.web_domain()
        host = dict(scope["headers"]).get(b"host", b"").decode().split(":")[0] if domain else ""
        if domain and host.endswith("." + domain) and "--" in host[: -len(domain) - 1]:
            app, _, label = host[: -len(domain) - 1].partition("--")
            inner = path
        else:
            parts = path.lstrip("/").split("/", 2)
            if len(parts) < 2 or not parts[0] or not parts[1]:
                raise NotFoundError(self._listing(cp, scope, "a web endpoint answers at /<app>/<label>"))
            app, label, inner = parts[0], parts[1], "/" + (parts[2] if len(parts) > 2 else "")
        function_id = cp.deployments.routes.get((app, label))
        runner = cp.runners.get(function_id) if function_id else None
        if runner is None or runner.web is None:
            raise NotFoundError(self._listing(cp, scope, f"no web endpoint /{app}/{label}"))
        return runner, runner.web, inner

    def _listing(self, cp: ControlPlane, scope: Scope, why: str) -> str:
        """Why nothing answered; the endpoints that do are named only to the admin (a
        stranger learns nothing about what is deployed here)."""
        headers = dict(scope["headers"])
        try:
            admin = cp.credentials.verify(headers.get(b"authorization", b"").decode("latin-1")).is_admin
        except Error:
            admin = False
        if not admin:
            return f"{why}; `skiff app list` shows the endpoints"
        have = sorted(f"/{a}/{lbl}" for a, lbl in cp.deployments.routes)
        return f"{why}; endpoints here: {', '.join(have) or 'none'}"

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle(self, cp: ControlPlane, scope: Scope, receive: Receive, send: Send) -> None:
        runner, balancer, inner = self._target(cp, scope)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        if (runner.spec.web or {}).get("requires_proxy_auth") and not await self._authorized(cp, headers):
            await _plain(send, 401, "this endpoint requires proxy auth: send Skiff-Key and Skiff-Secret headers "
                                    "(create them with `skiff token create`)")
            return
        query = scope.get("query_string", b"").decode("latin-1")
        token = _call_param(query)
        if token is not None:
            await self._collect(token, scope, query, receive, send)
            return
        body = await _read_body(receive)
        request = {"type": "http", "method": scope["method"], "path": inner, "query_string": query,
                   "headers": headers, "scheme": scope.get("scheme", "http"),
                   "client": list(scope.get("client") or ["", 0])}
        started = WebExchange(balancer, request, body)
        exchange: WebExchange | None = started
        try:
            try:
                async with asyncio.timeout(RESPONSE_DEADLINE):
                    head = await started.response_head()
            except TimeoutError:
                token, exchange = self._park(started), None
                await _redirect(scope, query, token, send)
                return
            await _start(send, head)
            await _stream(send, started.body())
        finally:
            if exchange is not None:
                exchange.close()

    def _park(self, exchange: WebExchange) -> str:
        """Let a request that outlived the deadline go on; its response waits here."""
        token = secrets.token_urlsafe(16)
        parked = Parked()

        async def go_on() -> None:
            try:
                parked.events.put_nowait(("head", await exchange.response_head()))
                async for chunk, last in exchange.body():
                    parked.held += len(chunk)
                    if parked.held > PARKED_BYTES:  # nobody is taking it: free the container
                        raise WebError(502, f"the response was over {PARKED_BYTES // 2**20} MiB before "
                                            "anyone collected it")
                    parked.events.put_nowait(("body", chunk, last))
            except WebError as exc:
                parked.events.put_nowait(("error", exc))
            finally:
                exchange.close()
                asyncio.get_running_loop().call_later(PARKED_TTL, self._parked.pop, token, None)

        parked.task = asyncio.create_task(go_on(), name=f"web-request-{token}")
        self._parked[token] = parked
        return token

    async def _collect(self, token: str, scope: Scope, query: str, receive: Receive, send: Send) -> None:
        """A followed redirect: wait again for the request's response."""
        parked = self._parked.get(token)
        if parked is None:
            raise WebError(410, f"no request is waiting under {CALL_PARAM}={token}: its response was already "
                                f"collected, or expired {PARKED_TTL:g} s after it finished")
        if parked.claimed:
            raise WebError(409, f"another request is already waiting for {CALL_PARAM}={token}; "
                                "try again once it has its answer or gives up")
        parked.claimed = True
        await receive()  # the follow-up's own (empty) body; the next message is its hang-up
        waiting = asyncio.ensure_future(parked.events.get())
        hang_up = asyncio.ensure_future(receive())
        try:
            await asyncio.wait({waiting, hang_up}, timeout=RESPONSE_DEADLINE, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            hang_up.cancel()
            parked.claimed = False
        if not waiting.done() or waiting.cancelled():
            if not hang_up.done():  # the deadline again: wait once more at the same URL
                await _redirect(scope, query, token, send)
            return  # or the caller hung up: the response stays for its next try
        event = waiting.result()
        self._parked.pop(token, None)  # one caller collects it
        if event[0] == "error":
            raise event[1]

        async def rest() -> AsyncIterator[tuple[bytes, bool]]:
            while True:
                item = await parked.events.get()
                if item[0] == "body":
                    parked.held -= len(item[1])
                if item[0] == "error":
                    raise item[1]
                yield item[1], item[2]
                if item[2]:
                    return

        await _start(send, event[1])
        await _stream(send, rest())

    # -- websockets ------------------------------------------------------------------------

    async def _websocket(self, cp: ControlPlane, scope: Scope, receive: Receive, send: Send) -> None:
        """A websocket session with an ASGI app, relayed message by message."""
        runner, balancer, inner = self._target(cp, scope)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        if (runner.spec.web or {}).get("requires_proxy_auth") and not await self._authorized(cp, headers):
            await send({"type": "websocket.close", "code": 1008})
            return
        await receive()  # websocket.connect: the app accepts or refuses it
        request = {"type": "websocket", "path": inner, "query_string": scope.get("query_string", b"").decode("latin-1"),
                   "headers": headers, "client": list(scope.get("client") or ["", 0]),
                   "subprotocols": list(scope.get("subprotocols") or [])}

        async def from_client() -> AsyncIterator[dict[str, Any]]:
            while True:
                msg = await receive()
                if msg["type"] == "websocket.disconnect":
                    yield {"type": "websocket.disconnect", "code": msg.get("code", 1000)}
                    return
                item: dict[str, Any] = {"type": "websocket.receive"}
                if msg.get("text") is not None:
                    item["text"] = msg["text"]
                if msg.get("bytes") is not None:
                    item["bytes_b64"] = base64.b64encode(msg["bytes"]).decode()
                yield item

        last = ""
        session = WebExchange(balancer, request, None).websocket(from_client())
        try:
            async with contextlib.aclosing(session):
                async for msg in session:
                    if "bytes_b64" in msg:
                        msg["bytes"] = base64.b64decode(msg.pop("bytes_b64"))
                    if "headers" in msg:
                        msg["headers"] = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in msg["headers"]]
                    last = msg["type"]
                    await send(msg)
                    if last == "websocket.close":
                        return
        except WebError as exc:
            log.info("websocket to %s ended: %s", runner.spec.name, exc)
        if last != "websocket.close":
            with contextlib.suppress(Exception):  # the client may be gone already
                await send({"type": "websocket.close", "code": 1000 if last else 1011})

    async def _authorized(self, cp: ControlPlane, headers: list[tuple[str, str]]) -> bool:
        pair = credentials(headers)
        return pair is not None and await cp.proxy_tokens.verify(*pair)


async def _start(send: Send, head: dict[str, Any]) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in head["headers"]]
    await send({"type": "http.response.start", "status": int(head["status"]), "headers": raw})


class ResponseBroken(Exception):
    """The container failed after the response's status went out. Raised to the HTTP
    server, which then drops the connection: the caller sees a cut-off response, not a
    complete-looking short one."""


async def _stream(send: Send, chunks: AsyncIterator[tuple[bytes, bool]]) -> None:
    """Pass the body on chunk by chunk, as the container sends it."""
    try:
        async for chunk, last in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": not last})
            if last:
                return
    except WebError as exc:
        raise ResponseBroken(f"the web response broke off: {exc}") from None
    raise ResponseBroken("the web response ended without its last part")


async def _redirect(scope: Scope, query: str, token: str, send: Send) -> None:
    location = scope["path"] + "?" + "&".join(filter(None, [_strip_call(query), f"{CALL_PARAM}={token}"]))
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def _read_body(receive: Receive) -> bytes:
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


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

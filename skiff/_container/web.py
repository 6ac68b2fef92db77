"""Serving a web function inside its container: the gateway's requests arrive as frames
on a Unix socket (:mod:`skiff._webproto`), and responses go back the same way.

- ``fastapi_endpoint``: the function becomes the one route of a FastAPI app;
- ``asgi_app`` / ``wsgi_app``: the function returns the app, called in-process;
- ``web_server``: the function starts a server on a port; requests are proxied to it.

Requests run one at a time, or up to ``@skiff.concurrent(max_inputs=)`` at once, like
any other input. The gateway may send a sequential container a few requests ahead, so
the next one is already here when the last one ends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import http.client
import inspect
import io
import json
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from ..protocol.webproto import BODY, END, ERROR, HEAD, LAST, WS, frame, json_frame, read_frame

CHUNK = 1024 * 1024  # the largest body frame a container sends


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    return json.dumps({"status": status, "headers": headers}).encode()


class WebHandler:
    def __init__(self, fn: Callable[..., Any], web: dict[str, Any], call: Callable[..., Any],
                 max_inputs: int = 1) -> None:
        self.kind = web["type"]
        self._max_inputs = max(1, max_inputs)
        if self.kind == "fastapi":
            from fastapi import FastAPI  # the image must have fastapi, as on Modal

            docs = bool(web.get("docs"))
            app = FastAPI(docs_url="/docs" if docs else None, redoc_url=None,
                          openapi_url="/openapi.json" if docs else None)
            endpoint = _inline(fn) if self._max_inputs == 1 else fn
            app.add_api_route("/", endpoint, methods=[web.get("method", "GET")])
            self.asgi: Any = app
        elif self.kind == "asgi":
            self.asgi = call(fn, (), {})
        elif self.kind == "wsgi":
            self.wsgi = call(fn, (), {})
        elif self.kind == "server":
            self.port = int(web["port"])
            threading.Thread(target=call, args=(fn, (), {}), name="skiff-web-server", daemon=True).start()
            _wait_for_port(self.port, float(web.get("startup_timeout", 5.0)))
        else:
            raise ValueError(f"unknown web function type {self.kind!r}")
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="skiff-web", daemon=True).start()
        self._server: asyncio.AbstractServer | None = None
        self._active = 0
        if self.kind in ("fastapi", "asgi"):
            self._run(self._lifespan_startup(), 60)

    def _run(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- the socket ------------------------------------------------------------------------

    def serve(self, path: str) -> None:
        """Listen on ``path``; returns once requests can arrive."""

        async def start() -> None:
            self._slots = asyncio.Semaphore(self._max_inputs)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self._server = await asyncio.start_unix_server(self._connection, path=path)

        self._run(start(), 30)

    def close(self, grace: float = 8.0) -> None:
        """Stop taking requests, let the running ones finish (up to ``grace`` seconds), then
        send the app's lifespan shutdown so its tasks end before the container does."""

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            deadline = time.monotonic() + grace
            while self._active and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if self.kind in ("fastapi", "asgi"):
                await self._lifespan_messages.put({"type": "lifespan.shutdown"})
                await asyncio.wait([self._lifespan], timeout=5)
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):  # shutting down anyway
            self._run(shutdown(), grace + 10)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    kind, payload = await read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the gateway closed this connection
                if kind != HEAD:
                    raise ValueError(f"expected a request head, got a {kind!r} frame")
                request = json.loads(payload)
                if request.get("type") == "websocket":
                    await self._one(self._websocket, request, reader, writer)
                    return  # a websocket's connection is not reused
                chunks = []
                while True:
                    kind, payload = await read_frame(reader)
                    chunks.append(payload)
                    if kind == LAST:
                        break
                request["body"] = b"".join(chunks)
                await self._one(self._http, request, reader, writer)
        finally:
            writer.close()

    async def _one(self, handler: Callable[..., Any], request: dict[str, Any], reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
        self._active += 1
        state: dict[str, bool] = {"ended": False}  # set once the response's last frame is written
        try:
            async with self._slots:
                try:
                    await handler(request, reader, writer, state)
                except Exception as exc:  # noqa: BLE001 - the app's error goes back to the gateway
                    text = "".join(traceback.format_exception(exc))
                    print(f"skiff: the web function failed on {request.get('path')}:\n{text}", file=sys.stderr, end="")
                    # After the last frame the gateway has moved on: a frame now would
                    # reach the next request on this connection. The answer stands.
                    if not state["ended"]:
                        writer.write(json_frame(ERROR, {"exc_type": type(exc).__name__, "message": str(exc)}))
            await writer.drain()
        finally:
            self._active -= 1

    # -- HTTP ------------------------------------------------------------------------------

    async def _http(self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    state: dict[str, bool]) -> None:
        if self.kind in ("fastapi", "asgi"):
            await self._asgi(request, writer, state)
            return
        # WSGI apps and proxied servers are blocking: their items come from a thread.
        items = self._wsgi(request) if self.kind == "wsgi" else self._proxy(request)
        loop = asyncio.get_running_loop()
        first = True
        while (item := await loop.run_in_executor(None, next, items, None)) is not None:
            data, last = item
            writer.writelines([frame(HEAD, data)] if first else _body_frames(data, last))
            first, state["ended"] = False, state["ended"] or last
            await writer.drain()
        if not state["ended"]:
            writer.write(frame(LAST))
            state["ended"] = True

    async def _asgi(self, request: dict[str, Any], writer: asyncio.StreamWriter, state: dict[str, bool]) -> None:
        path, query = request["path"], request["query_string"]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request["method"],
            "scheme": request.get("scheme", "http"), "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request["headers"]],
            "client": tuple(request.get("client") or ("", 0)), "server": ("skiff", 80),
        }
        body: bytes | None = request["body"]
        head: dict[str, Any] | None = None
        started = False

        async def receive() -> dict[str, Any]:
            nonlocal body
            if body is not None:
                msg, body = {"type": "http.request", "body": body, "more_body": False}, None
                return msg
            await asyncio.Event().wait()  # nothing more comes: the gateway sent the whole body
            return {"type": "http.disconnect"}

        async def send(msg: dict[str, Any]) -> None:
            nonlocal head, started
            if msg["type"] == "http.response.start":
                head = {"status": msg["status"],
                        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in msg.get("headers", [])]}
                return
            if msg["type"] != "http.response.body" or state["ended"]:
                return
            more = msg.get("more_body", False)
            if more and not msg.get("body") and head is None:
                return
            frames = _body_frames(msg.get("body", b""), last=not more)
            if head is not None:
                frames.insert(0, json_frame(HEAD, head))
                head, started = None, True
            writer.writelines(frames)
            state["ended"] = not more
            if more or len(frames) > 2:
                await writer.drain()

        try:
            await self.asgi(scope, receive, send)
        except Exception as exc:
            if not state["ended"]:
                raise
            # The app answered and raised anyway (Starlette answers 500, then re-raises):
            # the answer stands; the traceback goes to the logs.
            text = "".join(traceback.format_exception(exc))
            print(f"skiff: the web function failed on {path}:\n{text}", file=sys.stderr, end="")
            return
        if not state["ended"]:
            if not started and head is None:
                raise RuntimeError("the app returned without sending a response")
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    # -- ASGI lifespan ---------------------------------------------------------------------

    async def _lifespan_startup(self) -> None:
        started = asyncio.Event()
        self._lifespan_messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await self._lifespan_messages.put({"type": "lifespan.startup"})

        async def receive() -> dict[str, Any]:
            return await self._lifespan_messages.get()

        async def send(msg: dict[str, Any]) -> None:
            if msg["type"] in ("lifespan.startup.complete", "lifespan.startup.failed"):
                started.set()

        async def lifespan() -> None:
            try:
                await self.asgi({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
            except Exception:  # noqa: BLE001 - an app without lifespan support is fine
                pass
            finally:
                started.set()

        self._lifespan = asyncio.ensure_future(lifespan())
        await started.wait()

    # -- websockets ------------------------------------------------------------------------

    async def _websocket(self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         state: dict[str, bool]) -> None:
        """A websocket session: the client's messages arrive as WS frames, the app's go
        back as WS frames, and END closes the session."""
        if self.kind not in ("fastapi", "asgi"):
            raise ValueError("websockets need an ASGI app (asgi_app or fastapi_endpoint)")
        scope = {
            "type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "scheme": "ws", "path": request["path"], "raw_path": request["path"].encode(),
            "query_string": request["query_string"].encode(), "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request["headers"]],
            "client": tuple(request.get("client") or ("", 0)), "server": ("skiff", 80),
            "subprotocols": request.get("subprotocols", []),
        }
        connected = False

        async def receive() -> dict[str, Any]:
            nonlocal connected
            if not connected:
                connected = True
                return {"type": "websocket.connect"}
            try:
                kind, payload = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return {"type": "websocket.disconnect", "code": 1006}
            msg: dict[str, Any] = json.loads(payload) if kind == WS else {"type": "websocket.disconnect", "code": 1000}
            if "bytes_b64" in msg:
                msg["bytes"] = base64.b64decode(msg.pop("bytes_b64"))
            return msg

        async def send(msg: dict[str, Any]) -> None:
            msg = dict(msg)
            if isinstance(msg.get("bytes"), bytes | bytearray):
                msg["bytes_b64"] = base64.b64encode(msg.pop("bytes")).decode()
            if "headers" in msg:
                msg["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in msg["headers"]]
            writer.write(json_frame(WS, msg))
            await writer.drain()

        try:
            await self.asgi(scope, receive, send)
        finally:
            writer.write(frame(END))
            state["ended"] = True

    # -- WSGI ------------------------------------------------------------------------------

    def _wsgi(self, request: dict[str, Any]) -> Iterator[tuple[bytes, bool]]:
        environ = {
            "REQUEST_METHOD": request["method"], "SCRIPT_NAME": "", "PATH_INFO": request["path"],
            "QUERY_STRING": request["query_string"], "SERVER_NAME": "skiff", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0), "wsgi.url_scheme": request.get("scheme", "http"),
            "wsgi.input": io.BytesIO(request["body"]), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False, "CONTENT_LENGTH": str(len(request["body"])),
        }
        for key, value in request["headers"]:
            name = key.upper().replace("-", "_")
            if name == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif name != "CONTENT_LENGTH":
                environ["HTTP_" + name] = value
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            started[:] = [int(status.split()[0]), headers]
            return lambda data: None

        result = self.wsgi(environ, start_response)
        try:
            chunks = iter(result)
            first = next(chunks, b"")
            yield _head(started[0], [(k, v) for k, v in started[1]]), False
            yield from _with_last(first, chunks)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()

    # -- web_server ------------------------------------------------------------------------

    def _proxy(self, request: dict[str, Any]) -> Iterator[tuple[bytes, bool]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        url = request["path"] + ("?" + request["query_string"] if request["query_string"] else "")
        headers = {k: v for k, v in request["headers"] if k.lower() not in ("host", "content-length")}
        conn.request(request["method"], url, body=request["body"] or None, headers=headers)
        resp = conn.getresponse()
        yield _head(resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() != "transfer-encoding"]), False
        yield from _with_last(resp.read1(CHUNK), iter(lambda: resp.read1(CHUNK), b""))
        conn.close()


def _body_frames(body: bytes, last: bool) -> list[bytes]:
    """A body chunk as frames of at most CHUNK bytes (the last one marked LAST if this
    chunk ends the body), so one big response never makes one huge frame."""
    view = memoryview(body)
    pieces = [view[i:i + CHUNK] for i in range(0, len(view), CHUNK)] or [view]
    return [frame(LAST if last and i == len(pieces) - 1 else BODY, bytes(p)) for i, p in enumerate(pieces)]


def _inline(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A sync endpoint as a coroutine, so FastAPI calls it on the loop rather than in its
    thread pool. A sequential container runs one request at a time anyway, so the hop to
    a thread and back buys nothing and costs a good part of a quick request's time.
    Endpoints whose signature cannot be resolved here are left to FastAPI as they are."""
    if inspect.iscoroutinefunction(fn) or inspect.isgeneratorfunction(fn):
        return fn
    try:
        signature = inspect.signature(fn, eval_str=True)  # the annotations, in fn's own module
    except Exception:  # noqa: BLE001
        return fn

    @functools.wraps(fn)
    async def endpoint(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    endpoint.__signature__ = signature  # type: ignore[attr-defined]  # inspect reads it; typeshed's functions lack it
    return endpoint


def _with_last(first: bytes, rest: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Body chunks, each with whether it is the last (looking one chunk ahead)."""
    current = first
    for chunk in rest:
        if not chunk:
            continue
        if current:
            yield current, False
        current = chunk
    yield current, True


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"web_server: nothing listened on port {port} within {timeout:g} s (startup_timeout)")

"""Serving a web function inside its container: one gateway request in, a response out
as items (first ``{"status", "headers"}`` as JSON, then raw body chunks).

- ``fastapi_endpoint``: the function becomes the one route of a FastAPI app;
- ``asgi_app`` / ``wsgi_app``: the function returns the app, called in-process;
- ``web_server``: the function starts a server on a port; requests are proxied to it.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

CHUNK = 64 * 1024


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    return json.dumps({"status": status, "headers": headers}).encode()


class WebHandler:
    def __init__(self, fn: Callable[..., Any], web: dict, call: Callable[..., Any]) -> None:
        self.kind = web["type"]
        self._loop: asyncio.AbstractEventLoop | None = None
        if self.kind == "fastapi":
            from fastapi import FastAPI  # the image must have fastapi, as on Modal

            docs = bool(web.get("docs"))
            app = FastAPI(docs_url="/docs" if docs else None, redoc_url=None,
                          openapi_url="/openapi.json" if docs else None)
            app.add_api_route("/", fn, methods=[web.get("method", "GET")])
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
        if self.kind in ("fastapi", "asgi"):
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, name="skiff-asgi", daemon=True).start()
            asyncio.run_coroutine_threadsafe(self._lifespan_startup(), self._loop).result(60)

    def handle(self, request: dict, inbox: Callable[[], list[dict]]) -> Iterator[tuple[bytes, bool]]:
        """The response's items, each with whether it ends the response. ``inbox``
        fetches what a websocket client sent since."""
        if request.get("type") == "websocket":
            if self.kind not in ("fastapi", "asgi"):
                raise ValueError("websockets need an ASGI app (asgi_app or fastapi_endpoint)")
            return self._asgi_websocket(request, inbox)
        if self.kind in ("fastapi", "asgi"):
            return self._asgi(request)
        if self.kind == "wsgi":
            return self._wsgi(request)
        return self._proxy(request)

    # -- ASGI ------------------------------------------------------------------------------

    async def _lifespan_startup(self) -> None:
        started = asyncio.Event()
        self._lifespan_messages: asyncio.Queue = asyncio.Queue()
        await self._lifespan_messages.put({"type": "lifespan.startup"})

        async def receive() -> dict:
            return await self._lifespan_messages.get()

        async def send(msg: dict) -> None:
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

    def close(self) -> None:
        """Send the app's lifespan shutdown, so its tasks end before the container does."""
        if self._loop is None:
            return

        async def shutdown() -> None:
            await self._lifespan_messages.put({"type": "lifespan.shutdown"})
            await asyncio.wait([self._lifespan], timeout=5)
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass

    def _asgi(self, request: dict) -> Iterator[tuple[bytes, bool]]:
        assert self._loop is not None
        out: queue.Queue = queue.Queue()
        path, query = request["path"], request["query_string"]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request["method"],
            "scheme": request.get("scheme", "http"), "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request["headers"]],
            "client": tuple(request.get("client") or ("", 0)), "server": ("skiff", 80),
        }
        sent_body = False

        async def receive() -> dict:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": request["body"], "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(msg: dict) -> None:
            out.put(msg)

        future = asyncio.run_coroutine_threadsafe(self.asgi(scope, receive, send), self._loop)
        future.add_done_callback(lambda _f: out.put(None))
        while True:
            msg = out.get()
            if msg is None:
                future.result()  # re-raise the app's exception, if any
                return
            if msg["type"] == "http.response.start":
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in msg.get("headers", [])]
                yield _head(msg["status"], headers), False
            elif msg["type"] == "http.response.body":
                last = not msg.get("more_body", False)
                if msg.get("body") or last:
                    yield msg.get("body", b""), last

    def _asgi_websocket(self, request: dict, inbox: Callable[[], list[dict]]) -> Iterator[tuple[bytes, bool]]:
        """A websocket session: what the app sends goes out as JSON items; what the
        client sends comes from the server's inbox for this input, by long-poll."""
        assert self._loop is not None
        out: queue.Queue = queue.Queue()
        pending: list[dict] = []
        scope = {
            "type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "scheme": "ws", "path": request["path"], "raw_path": request["path"].encode(),
            "query_string": request["query_string"].encode(), "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request["headers"]],
            "client": tuple(request.get("client") or ("", 0)), "server": ("skiff", 80),
            "subprotocols": request.get("subprotocols", []),
        }

        async def receive() -> dict:
            while not pending:
                pending.extend(await asyncio.get_running_loop().run_in_executor(None, inbox))
            msg = pending.pop(0)
            if "bytes_b64" in msg:
                msg = {**msg, "bytes": base64.b64decode(msg.pop("bytes_b64"))}
            return msg

        async def send(msg: dict) -> None:
            out.put(msg)

        future = asyncio.run_coroutine_threadsafe(self.asgi(scope, receive, send), self._loop)
        future.add_done_callback(lambda _f: out.put(None))
        while True:
            msg = out.get()
            if msg is None:
                future.result()
                return
            msg = dict(msg)
            if isinstance(msg.get("bytes"), bytes | bytearray):
                msg["bytes_b64"] = base64.b64encode(msg.pop("bytes")).decode()
            if "headers" in msg:
                msg["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in msg["headers"]]
            yield json.dumps(msg).encode(), False

    # -- WSGI ------------------------------------------------------------------------------

    def _wsgi(self, request: dict) -> Iterator[tuple[bytes, bool]]:
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

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
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

    def _proxy(self, request: dict) -> Iterator[tuple[bytes, bool]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        url = request["path"] + ("?" + request["query_string"] if request["query_string"] else "")
        headers = {k: v for k, v in request["headers"] if k.lower() not in ("host", "content-length")}
        conn.request(request["method"], url, body=request["body"] or None, headers=headers)
        resp = conn.getresponse()
        yield _head(resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() != "transfer-encoding"]), False
        yield from _with_last(resp.read1(CHUNK), iter(lambda: resp.read1(CHUNK), b""))
        conn.close()


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

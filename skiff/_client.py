"""The SDK's HTTP client: one per process, used from the SDK's event loop.

Outside containers it is ``httpx.AsyncClient``. Inside one, the user's image may not have
httpx, so calls go through the standard library (:mod:`skiff._http`) on worker threads.
Either way server errors come back as skiff exceptions, and a refused connection as an
error that says how to start a server.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exception import AuthError, ConnectionError, Error
from .protocol import config
from .protocol.errors import error_from_code
from .protocol.http import BlockingHTTP, ServerGone
from .protocol.wire import API_PREFIX

if TYPE_CHECKING:
    from ._volume_transfer import LocalChannel

_client: Client | None = None
def reconnect_timeout() -> float:
    """``SKIFF_RECONNECT_TIMEOUT``: seconds a client waits for a server it lost to come back."""
    return float(os.environ.get("SKIFF_RECONNECT_TIMEOUT", "60"))


IDLE_EXPIRY_S = 20.0  # seconds a kept-alive connection may idle; the server keeps them 75 s


class Client:
    """The interface both transports give: ``await request(method, path, ...)``."""

    server_url: str
    token: str | None
    _volume_channel: LocalChannel | bool  # set by LocalChannel.for_client: False where there is none

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                      content: Any = None, timeout: float | None = None, idempotent: bool | None = None) -> Any:
        raise NotImplementedError

    async def get_bytes(self, path: str) -> bytes:
        body: bytes = await self.request("GET", path)
        return body

    async def stream(self, path: str, params: dict[str, Any] | None = None) -> AsyncIterator[bytes]:
        """A GET's body in chunks (this base version reads it whole)."""
        yield await self.request("GET", path, params=params)

    async def upload(self, path: str, file: Path, on_bytes: Any = None) -> None:
        """PUT a local file's bytes, streamed from disk."""
        raise NotImplementedError

    async def download(self, path: str, params: dict[str, Any] | None, dest: Path) -> None:
        """GET into a local file, streamed to disk."""
        raise NotImplementedError

    async def close(self) -> None:
        self._close_bulk()

    # -- bulk transfers, blocking, for worker threads ----------------------------------------
    # Large bodies go through the standard library's http.client, one keep-alive connection
    # per thread: it sends a buffer as it is and reads a body straight into one, where
    # httpx copies it in 64 KiB pieces on the event loop (several times slower).

    def _thread_http(self) -> BlockingHTTP:
        local = self.__dict__.setdefault("_bulk_threads", threading.local())
        if not hasattr(local, "http"):
            local.http = BlockingHTTP(self.server_url, getattr(self, "token", None))
            self.__dict__.setdefault("_bulk_opened", []).append(local.http)  # list.append is atomic
        http: BlockingHTTP = local.http  # a threading.local's attributes are untyped
        return http

    def _close_bulk(self) -> None:
        """Close the bulk connections and the local volume channel, if any were opened."""
        for http in self.__dict__.pop("_bulk_opened", []):
            http.close()
        self.__dict__.pop("_bulk_threads", None)
        channel = self.__dict__.pop("_volume_channel", None)
        if channel:
            channel.close()

    def put_body(self, path: str, body: bytes | memoryview) -> Any:
        """PUT ``body`` (blocking): the JSON answer, or the server's error raised."""
        return _decoded(self._bulk(lambda http: http.put_body(API_PREFIX + path, body)))

    def fetch_into(self, path: str, fd: int, offset: int, buffer: bytearray) -> int:
        """GET a body into an open file at ``offset`` (blocking); its length."""
        return int(self._bulk(lambda http: http.fetch_into(API_PREFIX + path, fd, offset, buffer))[2])

    def _bulk(self, op: Callable[[BlockingHTTP], tuple[int, str, bytes]]) -> tuple[int, str, bytes]:
        try:
            try:
                status, ctype, payload = op(self._thread_http())
            except ServerGone:  # a kept-alive connection the server closed: once more, on a new one
                status, ctype, payload = op(self._thread_http())
        except ServerGone as exc:
            raise ConnectionError(str(exc)) from exc
        if status >= 400:
            raise _error(status, ctype, payload)
        return status, ctype, payload


def _decoded(result: tuple[int, str, bytes]) -> Any:
    _status, ctype, payload = result
    if ctype.startswith("application/json"):
        return jsonlib.loads(payload) if payload else None
    return payload


class HttpxClient(Client):
    def __init__(self, server_url: str, token: str | None) -> None:
        import httpx

        self._httpx = httpx
        self.server_url = server_url.rstrip("/")
        self.token = token
        self._reached = False  # a server that answered once is waited for when it goes away
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.server_url + API_PREFIX,
            headers=headers,
            # Plain http needs no TLS context, and building one (loading the CA bundle)
            # costs ~30 ms of every command's start. Redirects are not followed.
            verify=self.server_url.startswith("https://"),
            timeout=httpx.Timeout(90.0, connect=5.0),
            # Idle connections are dropped here well before the server's keep-alive timeout
            # (KEEP_ALIVE_S there), so a request never goes out on one the server is closing.
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=IDLE_EXPIRY_S),
        )

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                      content: Any = None, timeout: float | None = None, idempotent: bool | None = None) -> Any:
        """One API request. A read, or a write the caller marks ``idempotent``, rides out
        an outage of a server this client has reached before (a restart, a crash): it is
        sent again with backoff for up to ``SKIFF_RECONNECT_TIMEOUT`` seconds (default 60).
        A read that changes state (a queue's get) passes ``idempotent=False``."""
        deadline: float | None = None
        delay = 0.1
        while True:
            try:
                result = await self._send(method, path, json=json, params=params, content=content, timeout=timeout)
                self._reached = True
                return result
            except ConnectionError:
                if not self._reached or not (method == "GET" if idempotent is None else idempotent):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + reconnect_timeout()
                    print(f"skiff: lost the server at {self.server_url}; reconnecting for up to "
                          f"{reconnect_timeout():g} s", file=sys.stderr)
                if now >= deadline:
                    raise
                await asyncio.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, 2.0)

    async def _send(self, method: str, path: str, *, json: Any, params: dict[str, Any] | None, content: Any,
                    timeout: float | None) -> Any:
        httpx = self._httpx
        kwargs: dict[str, Any] = {"json": json, "params": params}
        if content is not None:
            kwargs = {"content": content, "params": params}
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            try:
                resp = await self._http.request(method, path, **kwargs)
            except httpx.RemoteProtocolError:
                if method != "GET":
                    raise
                # The server closed a kept-alive connection as it was reused, before
                # reading the request: a read is safe to send again once.
                resp = await self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ConnectionError(_unreachable(self.server_url)) from exc
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError) as exc:
            raise ConnectionError(f"the connection to the skiff server at {self.server_url} broke: {exc!r}") from exc
        except httpx.TimeoutException as exc:
            raise ConnectionError(f"the skiff server at {self.server_url} did not answer in time ({exc!r})") from exc
        ctype = resp.headers.get("content-type", "")
        if resp.status_code >= 400:
            raise _error(resp.status_code, ctype, resp.content)
        if ctype.startswith("application/json"):
            return resp.json()
        return resp.content

    async def stream(self, path: str, params: dict[str, Any] | None = None) -> AsyncIterator[bytes]:
        """A GET's body in chunks as they arrive: memory stays flat for any size."""
        try:
            async with self._http.stream("GET", path, params=params) as resp:
                if resp.status_code >= 400:
                    raise _error(resp.status_code, resp.headers.get("content-type", ""), await resp.aread())
                async for chunk in resp.aiter_bytes(1 << 20):
                    yield chunk
        except self._httpx.ConnectError as exc:
            raise ConnectionError(_unreachable(self.server_url)) from exc

    async def upload(self, path: str, file: Path, on_bytes: Any = None) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            with open(file, "rb") as f:
                while chunk := await asyncio.to_thread(f.read, 8 << 20):
                    if on_bytes:
                        on_bytes(len(chunk))
                    yield chunk

        await self.request("PUT", path, content=chunks())

    async def download(self, path: str, params: dict[str, Any] | None, dest: Path) -> None:
        with open(dest, "wb") as f:
            async for chunk in self.stream(path, params):
                await asyncio.to_thread(f.write, chunk)

    async def close(self) -> None:
        self._close_bulk()
        await self._http.aclose()


class StdlibClient(Client):
    """Blocking ``http.client`` requests run on worker threads, one connection each."""

    def __init__(self, server_url: str, token: str | None) -> None:
        self.server_url = server_url.rstrip("/")
        self.token = token
        self._local = threading.local()

    def _http(self) -> BlockingHTTP:
        if not hasattr(self._local, "http"):
            self._local.http = BlockingHTTP(self.server_url, self.token)
        http: BlockingHTTP = self._local.http  # a threading.local's attributes are untyped
        return http

    def _send(self, method: str, url: str, body: bytes | None, ctype: str) -> Any:
        try:
            status, rtype, payload = self._http().send(method, url, body, ctype, attempts=3)
        except ServerGone as exc:
            raise ConnectionError(_unreachable(self.server_url)) from exc
        if status >= 400:
            raise _error(status, rtype, payload)
        if rtype.startswith("application/json"):
            return jsonlib.loads(payload) if payload else None
        return payload

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                      content: Any = None, timeout: float | None = None, idempotent: bool | None = None) -> Any:
        # BlockingHTTP already sends a request again across reconnects, whatever it is.
        url = API_PREFIX + path
        if params:
            url += "?" + urllib.parse.urlencode({k: _param(v) for k, v in params.items() if v is not None})
        body: bytes | None
        if content is not None:
            if not isinstance(content, bytes | bytearray):
                content = b"".join([chunk async for chunk in content])
            body, ctype = bytes(content), "application/octet-stream"
        else:
            body, ctype = (None if json is None else jsonlib.dumps(json).encode()), "application/json"
        return await asyncio.to_thread(self._send, method, url, body, ctype)

    # upload() and download() are the base class's NotImplementedError here: the blocking
    # BlockingHTTP.upload/download they called were dropped as unused (c4932da), and volume
    # transfers in containers go through put_body/fetch_into instead.


def _param(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _unreachable(url: str) -> str:
    return (
        f"cannot reach the skiff server at {url}. Start one with `skiff server start` "
        "(or unset SKIFF_SERVER_URL to let `skiff run` start a local server for you)."
    )


def _error(status: int, ctype: str, payload: bytes) -> Error:
    try:
        body = jsonlib.loads(payload)
        code, message = body.get("code", "internal"), body.get("message", payload.decode(errors="replace"))
    except ValueError:
        code, message = "internal", f"HTTP {status}: {payload[:500].decode(errors='replace')}"
    if status == 401:
        return AuthError(message)
    if status == 503:  # the server is going away (a restart): a client that knew it waits for it
        return ConnectionError(message)
    return error_from_code(code, message)


async def get_client() -> Client:
    """The process's client, starting a local server first if that is the embedded default."""
    global _client
    if _client is None:
        url = config.server_url()
        token = config.read_token()
        if os.environ.get("SKIFF_IS_CONTAINER") == "1":
            _client = StdlibClient(url, token)
            return _client
        if config.is_default_server() and config.autostart_enabled():
            from . import _local_server

            await asyncio.to_thread(_local_server.ensure_running)
            token = config.read_token()
        _client = HttpxClient(url, token)
    return _client


async def reset_client() -> None:
    """Forget the cached client (tests point a process at several servers in turn)."""
    global _client
    if _client is not None:
        await _client.close()
        _client = None

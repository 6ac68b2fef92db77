"""Web requests from the gateway to a web function's containers.

Requests never enter the input queue. The :class:`WebBalancer` gives each request a
*lease* on a ready container with room (the one with the fewest requests in flight), or
holds it until one has room. Held requests are the function's backlog and leased ones
its running inputs, so the autoscaler sizes a web function by in-flight requests, just
as it sizes other functions by inputs (``@skiff.concurrent(target_inputs=)`` included).

A container's room is ``max_inputs`` for ``@skiff.concurrent`` functions. A sequential
one runs a request at a time, but while its requests are quick it is sent a few ahead,
as other inputs are prefetched, so it never waits on the gateway between two; never
behind a websocket session or a request already running long, which would hold them.

A :class:`WebExchange` is one request's round trip over the container's socket
(:mod:`skiff._webproto`). It can be resumed after a cancellation, which is how a request
that outlives the gateway's response deadline goes on in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from ..protocol.errors import Error
from ..protocol.webproto import (
    BODY,
    END,
    ERROR,
    FRAME_HEADER,
    HEAD,
    LAST,
    MAX_FRAME,
    WS,
    frame,
    json_frame,
)
from .containers import ContainerPool, ContainerState, WebLease

log = logging.getLogger("skiff.web")

SEND_AHEAD = 8  # requests a sequential container may be sent while its requests are quick
QUICK = 0.05  # seconds: the mean request time under which requests are sent ahead
LONG = 0.2  # seconds: a request running longer stops more being sent ahead behind it
POOL = 32  # idle connections kept per container
RETRIES = 3  # tries to reach a container when the one picked is gone before taking the request


class WebError(Error):
    """A request the gateway answers itself, with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status


class WebBalancer:
    def __init__(self, pool: ContainerPool) -> None:
        self.pool = pool
        self.waiting: deque[tuple[asyncio.Future[WebLease], bool]] = deque()  # (waiter, for a websocket)
        self._mean = QUICK  # recent mean seconds per request; nothing is sent ahead until one was quick
        spec = pool.spec
        self._concurrent = spec.max_concurrent_inputs > 1
        self._target = max(1, spec.target_concurrent_inputs or 1)

    # -- slots -----------------------------------------------------------------------------

    def room(self, c: ContainerState) -> int:
        """How many requests the container may hold. A sequential one is sent requests
        ahead only while they are quick, and never behind a websocket session or a
        request already running long: those would hold the queued ones up."""
        if self._concurrent:
            return self.pool.spec.max_concurrent_inputs
        if self._mean >= QUICK:
            return 1
        if any(lease.websocket for lease in c.web.leases):
            return 1
        # A lease's age includes its wait behind the ones sent before it: allow for that.
        oldest = min((lease.started for lease in c.web.leases), default=None)
        if oldest is not None and asyncio.get_running_loop().time() - oldest > LONG + SEND_AHEAD * self._mean:
            return 1
        return SEND_AHEAD

    def _pick(self) -> ContainerState | None:
        best = None
        for c in self.pool.containers.values():
            w = c.web
            if w.ready and not c.stopping and w.active < self.room(c) and (best is None or w.active < best.web.active):
                best = c
        return best

    def _take(self, c: ContainerState, websocket: bool) -> WebLease:
        loop = asyncio.get_running_loop()
        lease = WebLease(container=c, started=loop.time(), websocket=websocket)
        lease.timer = loop.call_later(self.pool.spec.timeout, self._expire, lease)
        c.web.leases.add(lease)
        c.idle_since = None
        if c.web.active > self._target:
            self.pool.poke()  # past its target: the autoscaler may want another container
        return lease

    async def acquire(self, websocket: bool = False) -> WebLease:
        if self.pool.stopped:
            raise WebError(503, f"{self.pool.spec.name}: its app has stopped")
        c = self._pick()
        if c is not None:
            return self._take(c, websocket)
        waiter: asyncio.Future[WebLease] = asyncio.get_running_loop().create_future()
        entry = (waiter, websocket)
        self.waiting.append(entry)
        self.pool.poke()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result(), reusable=False)  # handed a container just as we gave up
            else:
                with contextlib.suppress(ValueError):
                    self.waiting.remove(entry)
            raise

    def release(self, lease: WebLease, reusable: bool) -> None:
        if lease.timer is not None:
            lease.timer.cancel()
        c, w = lease.container, lease.container.web
        if lease not in w.leases:
            return  # released already
        w.leases.discard(lease)
        ran = lease.writer is not None or lease.timed_out  # not one handed over and given up at once
        if lease.writer is not None:
            if reusable and lease.reader is not None and not c.stopping and w.ready and len(w.idle) < POOL:
                w.idle.append((lease.reader, lease.writer))
            else:
                lease.writer.close()
            lease.reader = lease.writer = None
        if ran and not self._concurrent and not lease.websocket:
            self._mean = 0.8 * self._mean + 0.2 * (asyncio.get_running_loop().time() - lease.started)
        if not w.leases:
            c.idle_since = time.time()
            self.pool.poke()
        self._wake()

    def _wake(self) -> None:
        while self.waiting:
            c = self._pick()
            if c is None:
                return
            waiter, websocket = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(self._take(c, websocket))

    async def connect(self, lease: WebLease) -> None:
        w = lease.container.web
        if w.idle:
            lease.reader, lease.writer = w.idle.pop()
            return
        # The directory is the container's: connect only to a socket it made there, not
        # to wherever a link it put in its place would lead.
        if not stat.S_ISSOCK(os.lstat(w.socket).st_mode):
            raise OSError(f"{w.socket} is not a socket")
        lease.reader, lease.writer = await asyncio.open_unix_connection(w.socket)

    def _expire(self, lease: WebLease) -> None:
        """The request ran past the function's timeout: like any input, its container is
        stopped (the app cannot be interrupted otherwise), and the caller is told. On a
        @concurrent container a websocket session past it is only closed (the app sees
        the client leave), sparing the container's other requests."""
        lease.timed_out = True
        if lease.writer is not None:
            lease.writer.transport.abort()
        # A websocket session of a sequential container holds its only slot, and an app
        # that neither sends nor receives would never notice the session ended.
        if not lease.websocket or not self._concurrent:
            self.pool.kill_container(lease.container, "input timed out")

    # -- containers ------------------------------------------------------------------------

    def ready(self, c: ContainerState) -> None:
        c.web.ready = True
        if not c.web.leases and not c.inflight:
            c.idle_since = time.time()
        self._wake()

    def gone(self, c: ContainerState) -> None:
        c.web.ready = False
        for _reader, writer in c.web.idle:
            writer.close()
        c.web.idle.clear()

    def fail_waiting(self, message: str, status: int = 503) -> None:
        while self.waiting:
            waiter, _ = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(WebError(status, message))


class WebExchange:
    """One request: find a container, send the request, read the answer."""

    def __init__(self, balancer: WebBalancer, head: dict[str, Any], body: bytes | None) -> None:
        self.balancer = balancer
        self.name = balancer.pool.spec.name
        self._request = json_frame(HEAD, head) + (frame(LAST, body) if body is not None else b"")
        self._websocket = head.get("type") == "websocket"
        self._lease: WebLease | None = None
        self._sent = False
        self._header: tuple[bytes, int] | None = None  # a frame's header read before a cancellation
        self._tries = 0

    async def _frame(self) -> tuple[bytes, bytes]:
        """The next frame. Safe to cancel and call again: nothing read is lost."""
        assert self._lease is not None and self._lease.reader is not None, "read before the request was sent"
        reader = self._lease.reader
        if self._header is None:
            self._header = FRAME_HEADER.unpack(await reader.readexactly(FRAME_HEADER.size))
        kind, size = self._header
        if size > MAX_FRAME:
            self._header = None
            self.close()
            raise WebError(502, f"{self.name}: the container sent a frame of {size} bytes, over the "
                                f"{MAX_FRAME}-byte limit")
        payload = await reader.readexactly(size) if size else b""
        self._header = None
        return kind, payload

    async def send(self) -> None:
        """Lease a container (waiting for one with room) and send the request to it."""
        while not self._sent:
            if self._lease is None:
                self._lease = await self.balancer.acquire(websocket=self._websocket)
            try:
                if self._lease.writer is None:
                    await self.balancer.connect(self._lease)
                assert self._lease.writer is not None  # connect() set it, or raised
                self._lease.writer.write(self._request)
                self._sent = True
            except OSError as exc:  # the container went away before it took the request
                self._retry_or_raise(exc)

    async def response_head(self) -> dict[str, Any]:
        """Send the request, if not yet sent, and read the status and headers."""
        await self.send()
        try:
            kind, payload = await self._frame()
        except (asyncio.IncompleteReadError, OSError):
            raise self._failure(started=False) from None
        if kind != HEAD:
            raise self._unexpected(kind, payload)
        head: dict[str, Any] = json.loads(payload)
        return head

    async def body(self) -> AsyncIterator[tuple[bytes, bool]]:
        """The body's chunks as they arrive, each with whether it is the last."""
        while True:
            try:
                kind, payload = await self._frame()
            except (asyncio.IncompleteReadError, OSError):
                raise self._failure(started=True) from None
            if kind == BODY:
                yield payload, False
            elif kind == LAST:
                self.close(reusable=True)
                yield payload, True
                return
            else:
                raise self._unexpected(kind, payload)

    # -- websockets ------------------------------------------------------------------------

    async def websocket(self, client_messages: AsyncIterator[dict[str, Any]]) -> AsyncGenerator[dict[str, Any], None]:
        """A websocket session: what the client sends goes to the app as it comes, and
        the app's messages are yielded until it ends the session."""
        await self.send()
        lease = self._lease
        assert lease is not None and lease.writer is not None
        writer = lease.writer

        async def forward() -> None:
            async for msg in client_messages:
                writer.write(json_frame(WS, msg))
                await writer.drain()

        forwarding = asyncio.create_task(forward())
        try:
            while True:
                try:
                    kind, payload = await self._frame()
                except (asyncio.IncompleteReadError, OSError):
                    return
                if kind != WS:
                    if kind == ERROR:
                        info = json.loads(payload)
                        log.info("websocket session of %s failed: %s: %s", self.name, info["exc_type"], info["message"])
                    return
                yield json.loads(payload)
        finally:
            forwarding.cancel()
            self.close(reusable=False)

    # -- endings ---------------------------------------------------------------------------

    def close(self, reusable: bool = False) -> None:
        """Give the lease back; a connection in the middle of a response is not reused."""
        if self._lease is not None:
            lease, self._lease = self._lease, None
            self.balancer.release(lease, reusable and self._header is None)

    def _retry_or_raise(self, exc: BaseException) -> None:
        self.close()
        self._tries += 1
        if self._tries >= RETRIES:
            raise WebError(502, f"{self.name}: could not reach a container for this request: {exc}")

    def _failure(self, started: bool) -> WebError:
        """The connection broke: the request timed out (and its container was stopped),
        or the container died."""
        timed_out = self._lease is not None and self._lease.timed_out
        self.close()
        timeout = self.balancer.pool.spec.timeout
        if timed_out:
            return WebError(504, f"{self.name}: timed out after {timeout:g} s (timeout={timeout:g})")
        return WebError(502, f"{self.name}: the container serving this request died"
                             + (" while sending the response" if started else ""))

    def _unexpected(self, kind: bytes, payload: bytes) -> WebError:
        """A frame other than the response's next: the app failed (``ERROR``, after
        which the connection is clean), or the container broke the protocol."""
        self.close()  # even after a clean ERROR: a connection that surprised us is not reused
        if kind == ERROR:
            info = json.loads(payload)
            return WebError(500, f"the web function failed: {info['exc_type']}: {info['message']}")
        if kind == END:
            return WebError(502, f"{self.name}: the app ended the request without a response")
        return WebError(502, f"{self.name}: unexpected {kind!r} frame from the container")


__all__ = ["WebBalancer", "WebError", "WebExchange"]

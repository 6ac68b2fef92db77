"""Web requests' path with no server: which container the balancer picks, how held
requests wait, and a round trip through a real in-container WebHandler on a Unix socket."""

from __future__ import annotations

import asyncio
import json

import pytest

from skiff._container.web import WebHandler
from skiff.protocol.wire import FunctionSpec
from skiff.server.containers import ContainerPool, ContainerState
from skiff.server.webproxy import LONG, QUICK, SEND_AHEAD, WebBalancer, WebError, WebExchange

BIG = bytes(range(256)) * (3 * 4096 + 1)  # 3 MiB and 256 bytes


class FakeWriter:
    def close(self) -> None:
        pass


def served(lease):
    """A lease as if its request had been sent (the mean request time counts only those)."""
    lease.writer = FakeWriter()
    return lease


class CountingPool(ContainerPool):
    """A real pool, with no runner behind it: it counts what the balancer asks of one."""

    def __init__(self, max_inputs: int = 1, target: int = 1, timeout: float = 60) -> None:
        spec = FunctionSpec(name="fn", max_concurrent_inputs=max_inputs, target_concurrent_inputs=target,
                            timeout=timeout)
        self.pokes = 0
        self.killed: list[str] = []
        super().__init__(spec, self._count_poke, lambda c, _reason: self.killed.append(c.id))

    def _count_poke(self) -> None:
        self.pokes += 1

    def add(self, cid: str, balancer: WebBalancer, socket: str = "", ready: bool = True) -> ContainerState:
        c = ContainerState(id=cid)
        c.web.socket = socket
        self.containers[cid] = c
        if ready:
            balancer.ready(c)
        return c


def balanced(**knobs) -> tuple[CountingPool, WebBalancer]:
    pool = CountingPool(**knobs)
    return pool, WebBalancer(pool)


def run(coro):
    return asyncio.run(coro)


def test_the_least_busy_ready_container_is_picked():
    async def go():
        runner, balancer = balanced(max_inputs=4)
        a, b = runner.add("a", balancer), runner.add("b", balancer)
        runner.add("starting", balancer, ready=False)
        stopping = runner.add("stopping", balancer)
        stopping.stopping = True
        leases = [await balancer.acquire() for _ in range(4)]
        assert sorted(lease.container.id for lease in leases) == ["a", "a", "b", "b"]
        assert a.web.active == b.web.active == 2 and a.idle_since is None
        for lease in leases:
            balancer.release(lease, reusable=False)
        assert a.web.active == b.web.active == 0 and a.idle_since is not None

    run(go())


def test_a_sequential_container_is_sent_ahead_only_once_requests_are_quick():
    async def go():
        runner, balancer = balanced()
        a = runner.add("a", balancer)
        assert balancer.room(a) == 1  # nothing known yet: one at a time
        lease = await balancer.acquire()
        balancer.release(served(lease), reusable=False)  # a quick request
        assert balancer.room(a) == SEND_AHEAD
        leases = [await balancer.acquire() for _ in range(SEND_AHEAD)]
        assert not balancer.waiting and a.web.active == SEND_AHEAD
        await asyncio.sleep(QUICK * 3)
        for lease in leases:
            balancer.release(served(lease), reusable=False)  # slow ones: back to one at a time
        assert balancer.room(a) == 1

    run(go())


def test_requests_given_up_before_they_were_sent_are_no_sign_of_speed():
    async def go():
        runner, balancer = balanced()
        a = runner.add("a", balancer)
        for _ in range(5):
            balancer.release(await balancer.acquire(), reusable=False)  # never sent anywhere
        assert balancer.room(a) == 1

    run(go())


def test_nothing_is_sent_ahead_behind_a_websocket_or_a_long_request():
    async def go():
        runner, balancer = balanced()
        a = runner.add("a", balancer)
        balancer.release(served(await balancer.acquire()), reusable=False)  # quick: requests may go ahead
        session = await balancer.acquire(websocket=True)
        assert balancer.room(a) == 1 and a.web.active == 1
        held = asyncio.ensure_future(balancer.acquire())
        await asyncio.sleep(0)
        assert len(balancer.waiting) == 1  # waits for another container instead
        balancer.release(session, reusable=False)
        running = await held
        assert balancer.room(a) == SEND_AHEAD
        await asyncio.sleep(LONG + SEND_AHEAD * QUICK + 0.05)
        assert balancer.room(a) == 1  # the one running has run long
        balancer.release(running, reusable=False)

    run(go())


def test_a_stopped_function_takes_no_requests():
    async def go():
        runner, balancer = balanced()
        runner.add("a", balancer)
        runner.stopped = True
        with pytest.raises(WebError, match="its app has stopped") as refused:
            await balancer.acquire()
        assert refused.value.http_status == 503

    run(go())


def test_held_requests_wait_in_order_and_count_as_backlog():
    async def go():
        runner, balancer = balanced()
        first = asyncio.ensure_future(balancer.acquire())
        second = asyncio.ensure_future(balancer.acquire())
        await asyncio.sleep(0)
        assert len(balancer.waiting) == 2 and runner.pokes >= 2  # the autoscaler hears of them
        c = runner.add("a", balancer)
        lease = await first
        assert lease.container is c and not second.done()
        balancer.release(lease, reusable=False)
        assert (await second).container is c and not balancer.waiting

    run(go())


def test_a_request_that_gives_up_waiting_is_forgotten():
    async def go():
        runner, balancer = balanced()
        waiting = asyncio.ensure_future(balancer.acquire())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not balancer.waiting
        c = runner.add("a", balancer)
        assert c.web.active == 0

    run(go())


def test_a_concurrent_container_takes_max_inputs_and_past_its_target_asks_for_more():
    async def go():
        runner, balancer = balanced(max_inputs=3, target=2)
        runner.add("a", balancer)
        await balancer.acquire()
        await balancer.acquire()
        pokes = runner.pokes
        await balancer.acquire()  # the third is past the target of 2
        assert runner.pokes == pokes + 1
        held = asyncio.ensure_future(balancer.acquire())
        await asyncio.sleep(0)
        assert len(balancer.waiting) == 1  # max_inputs reached
        balancer.fail_waiting("fn: the app stopped")
        with pytest.raises(WebError, match="the app stopped"):
            await held

    run(go())


def test_a_round_trip_through_a_container_web_handler(tmp_path):
    """Frames both ways through the real in-container server: a plain response, a
    streamed one, an app error, and the connection reused after each."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            return
        await receive()
        if scope["path"] == "/fail":
            raise RuntimeError("no luck")
        if scope["path"] == "/big":  # one ASGI message, bigger than a frame may be
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": BIG})
            return
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for part in (b"a", b"b", b"c"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        body = json.dumps({"path": scope["path"], "query": scope["query_string"].decode()}).encode()
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-skiff", b"yes")]})
        await send({"type": "http.response.body", "body": body})

    handler = WebHandler(lambda: app, {"type": "asgi"}, lambda fn, a, k: fn(*a, **k))
    socket = str(tmp_path / "http.sock")
    handler.serve(socket)
    try:
        async def go():
            runner, balancer = balanced()
            c = runner.add("a", balancer, socket=socket)

            def request(path: str) -> WebExchange:
                return WebExchange(balancer, {"type": "http", "method": "GET", "path": path, "query_string": "q=1",
                                              "headers": [], "client": ["", 0]}, b"")

            async def whole(path: str) -> tuple[dict, list]:
                exchange = request(path)
                head = await exchange.response_head()
                return head, [chunk async for chunk in exchange.body()]

            head, chunks = await whole("/hello")
            assert head == {"status": 201, "headers": [["x-skiff", "yes"]]}
            assert chunks == [(json.dumps({"path": "/hello", "query": "q=1"}).encode(), True)]
            assert len(c.web.idle) == 1  # kept for the next request
            head, chunks = await whole("/stream")
            assert head["status"] == 200 and chunks == [(b"a", False), (b"b", False), (b"c", False), (b"", True)]
            head, chunks = await whole("/big")
            assert b"".join(c for c, _ in chunks) == BIG and len(chunks) == 4 and chunks[-1][1]
            with pytest.raises(WebError, match="the web function failed: RuntimeError: no luck") as failed:
                await request("/fail").response_head()
            assert failed.value.http_status == 500
            head, _ = await whole("/again")
            assert head["status"] == 201 and len(c.web.idle) == 1 and c.web.active == 0
            balancer.gone(c)  # the container's end closes its pooled connections
            await asyncio.sleep(0)

        run(go())
    finally:
        handler.close(grace=1)


def test_an_error_after_a_finished_response_does_not_reach_the_next_request(tmp_path):
    """A WSGI iterable whose close() raises once the response went out: the traceback is
    logged, and the next request on the same connection still gets its own answer."""

    class Body(list):
        def close(self):
            raise RuntimeError("teardown failed")

    def wsgi(environ, start_response):
        start_response("200 OK", [("content-type", "text/plain")])
        return Body([environ["PATH_INFO"].encode()])

    handler = WebHandler(lambda: wsgi, {"type": "wsgi"}, lambda fn, a, k: fn(*a, **k))
    socket = str(tmp_path / "http.sock")
    handler.serve(socket)
    try:
        async def go():
            runner, balancer = balanced()
            c = runner.add("a", balancer, socket=socket)
            for path in ("/first", "/second", "/third"):
                exchange = WebExchange(balancer, {"type": "http", "method": "GET", "path": path, "query_string": "",
                                                  "headers": [], "client": ["", 0]}, b"")
                head = await exchange.response_head()
                body = b"".join([chunk async for chunk, _ in exchange.body()])
                assert (head["status"], body) == (200, path.encode())
            assert len(c.web.idle) == 1  # one connection served all three
            balancer.gone(c)
            await asyncio.sleep(0)

        run(go())
    finally:
        handler.close(grace=1)

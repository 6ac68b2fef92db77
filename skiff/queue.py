"""``Queue``: a named, persistent FIFO shared by functions and clients, with partitions.

```python
q = skiff.Queue.from_name("jobs", create_if_missing=True)
q.put({"id": 1})
q.get()                     # waits (long-poll) until an item arrives
```
"""

from __future__ import annotations

import queue as _stdqueue
import time
from collections.abc import AsyncIterator
from typing import Any

from ._object import NamedObject
from ._sync import dual
from .protocol import serialization as ser
from .protocol.wire import QueuePut, encode

__all__ = ["Queue"]

_POLL = 25.0  # seconds one server long-poll may wait


class Queue(NamedObject):
    _kind = "queue"
    _route = "queues"

    @staticmethod
    def from_name(name: str, *, create_if_missing: bool = False) -> Queue:
        return Queue(name, create_if_missing)

    @dual
    async def put(self, v: Any, block: bool = True, timeout: float | None = None, *, partition: str | None = None) -> None:
        """Add an item (queues are unbounded, so ``block``/``timeout`` never wait)."""
        await self._put([v], partition)

    @dual
    async def put_many(self, vs: list[Any], block: bool = True, timeout: float | None = None, *,
                       partition: str | None = None) -> None:
        await self._put(list(vs), partition)

    async def _put(self, vs: list[Any], partition: str | None) -> None:
        client = await self._client()
        body = QueuePut(values=[ser.b64(ser.serialize(v)) for v in vs], partition=partition or "")
        await client.request("POST", f"/queues/{self.name}/put", json=encode(body))

    async def _get(self, n: int, block: bool, timeout: float | None, partition: str | None) -> list[Any]:
        client = await self._client()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.0 if not block else _POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic()))
            # Not sent again across a lost connection: the server may have taken the items.
            res = await client.request("GET", f"/queues/{self.name}/get", idempotent=False,
                                       params={"n": n, "timeout": wait, "partition": partition or ""})
            if res["values"] or not block or (deadline is not None and time.monotonic() >= deadline):
                return [ser.deserialize(ser.unb64(v)) for v in res["values"]]

    @dual
    async def get(self, block: bool = True, timeout: float | None = None, *, partition: str | None = None) -> Any:
        """Remove and return the next item. Blocks until one arrives (up to ``timeout``
        seconds, then raises ``queue.Empty``); with ``block=False`` returns None at once
        if the queue is empty."""
        items = await self._get(1, block, timeout, partition)
        if items:
            return items[0]
        if block:
            raise _stdqueue.Empty()
        return None

    @dual
    async def get_many(self, n_values: int, block: bool = True, timeout: float | None = None, *,
                       partition: str | None = None) -> list[Any]:
        """Up to ``n_values`` items, waiting as ``get`` does for the first."""
        return await self._get(n_values, block, timeout, partition)

    @dual
    async def len(self, *, partition: str | None = None, total: bool = False) -> int:
        client = await self._client()
        params = {} if total else {"partition": partition or ""}
        n: int = (await client.request("GET", f"/queues/{self.name}/len", params=params))["len"]
        return n

    @dual
    async def clear(self, *, partition: str | None = None, all: bool = False) -> None:  # noqa: A002 - Modal's name
        client = await self._client()
        params = {} if all else {"partition": partition or ""}
        await client.request("POST", f"/queues/{self.name}/clear", params=params)

    @dual
    async def iterate(self, *, partition: str | None = None, item_poll_timeout: float = 0.0) -> AsyncIterator[Any]:
        """Yield the items in order without removing them, waiting up to
        ``item_poll_timeout`` seconds for each new one after the last."""
        client = await self._client()
        after = 0
        while True:
            res = await client.request("GET", f"/queues/{self.name}/peek",
                                       params={"after": after, "partition": partition or ""})
            for i, v in res["items"]:
                after = i
                yield ser.deserialize(ser.unb64(v))
            if not res["items"]:
                if item_poll_timeout <= 0:
                    return
                deadline = time.monotonic() + item_poll_timeout
                while time.monotonic() < deadline:
                    await _sleep(0.1)
                    res = await client.request("GET", f"/queues/{self.name}/peek",
                                               params={"after": after, "n": 1, "partition": partition or ""})
                    if res["items"]:
                        break
                else:
                    return

    def __len__(self) -> int:
        n: int = self.len()  # a dual method's blocking form is untyped (Any) to mypy
        return n


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)

"""Container output: buffered into the database in batches, and woken to live readers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .store import Store
from .writebehind import WriteBehind

MAX_BATCH = 2000


class LogSink(WriteBehind):
    def __init__(self, store: Store) -> None:
        super().__init__("log-sink")
        self._store = store
        self._buffer: list[dict[str, Any]] = []
        self._flushed = asyncio.Event()

    def write(self, app_id: str, container_id: str, function: str, stream: str, text: str) -> None:
        self._buffer.append(
            {"app_id": app_id, "container_id": container_id, "function": function,
             "stream": stream, "ts": time.time(), "text": text}
        )
        self._wake()

    async def flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[:MAX_BATCH], self._buffer[MAX_BATCH:]
            await self._store.run(self._store.append_logs, batch)
        flushed, self._flushed = self._flushed, asyncio.Event()
        flushed.set()

    async def wait_flush(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._flushed.wait(), timeout)
        except TimeoutError:
            pass

"""Container output: buffered into the database in batches, and woken to live readers."""

from __future__ import annotations

import asyncio
import time

from .store import Store

FLUSH_INTERVAL = 0.05  # seconds; the worst-case delay before a line reaches `skiff run`
MAX_BATCH = 2000


class LogSink:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._buffer: list[dict] = []
        self._have_lines = asyncio.Event()
        self._flushed = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="log-sink")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.flush()

    def write(self, app_id: str, container_id: str, function: str, stream: str, text: str) -> None:
        self._buffer.append(
            {"app_id": app_id, "container_id": container_id, "function": function,
             "stream": stream, "ts": time.time(), "text": text}
        )
        self._have_lines.set()

    async def flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[:MAX_BATCH], self._buffer[MAX_BATCH:]
            await self._store.run(self._store.append_logs, batch)
        flushed, self._flushed = self._flushed, asyncio.Event()
        flushed.set()

    async def _run(self) -> None:
        while True:
            await self._have_lines.wait()
            self._have_lines.clear()
            await asyncio.sleep(FLUSH_INTERVAL)  # gather a burst of lines into one write
            await self.flush()

    async def wait_flush(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._flushed.wait(), timeout)
        except TimeoutError:
            pass

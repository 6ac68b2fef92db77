"""What the call journal and the log sink share: records gathered in memory and written
to the database by a background task, a burst at a time, so no request waits on it."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("skiff.writebehind")


class WriteBehind:
    """Subclasses append records, call :meth:`_wake`, and implement :meth:`flush`."""

    # Seconds a burst gathers before one write; also the worst-case delay before a
    # container's log line can reach `skiff run`.
    FLUSH_INTERVAL = 0.05

    def __init__(self, name: str) -> None:
        self._name = name
        self._pending = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def close(self) -> None:
        """Stop the background task, then write what is left."""
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.flush()

    def _wake(self) -> None:
        self._pending.set()

    async def flush(self) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            await asyncio.sleep(self.FLUSH_INTERVAL)
            try:
                await self.flush()
            except Exception:  # a bad batch must not end the writing of every later one
                log.exception("%s: a write failed; its records are dropped", self._name)

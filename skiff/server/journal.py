"""Call records, written behind in batches: a call never waits on the database.

Inputs and outputs live in memory (``calls.py``); the ``calls`` table is history (and
the schedule runs ``skiff app history`` shows). Writing a row per call inline would cap
a busy server at the rate of single-row SQLite commits, so rows are gathered for
``WriteBehind.FLUSH_INTERVAL`` and written in one transaction.
"""

from __future__ import annotations

import time
from typing import Any

from .store import Store
from .writebehind import WriteBehind


class CallJournal(WriteBehind):
    def __init__(self, store: Store) -> None:
        super().__init__("call-journal")
        self._store = store
        self._created: list[dict[str, Any]] = []
        self._finished: list[dict[str, Any]] = []

    def created(self, call_id: str, function_id: str, kind: str) -> None:
        self._created.append({"id": call_id, "function_id": function_id, "kind": kind, "status": "pending",
                              "created_at": time.time(), "finished_at": None, "num_inputs": 0, "num_failures": 0})
        self._wake()

    def finished(self, call_id: str, status: str, num_inputs: int, num_failures: int) -> None:
        self._finished.append({"id": call_id, "status": status, "finished_at": time.time(),
                               "num_inputs": num_inputs, "num_failures": num_failures})
        self._wake()

    async def flush(self) -> None:
        created, self._created = self._created, []
        finished, self._finished = self._finished, []
        # A call that began and ended within one batch is written once, already finished.
        new = {row["id"]: row for row in created}
        for row in [f for f in finished if f["id"] in new]:
            new[row["id"]].update(row)
        finished = [f for f in finished if f["id"] not in new]
        if created or finished:
            await self._store.run(self._store.record_calls, created, finished)

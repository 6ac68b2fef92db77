"""Durable calls: a spawned or mapped call survives the server.

Its row, its inputs and its outputs are in the database before anyone is told of them:
the call's creation answers only once the row and its first inputs are written; more
inputs are written before they are acknowledged; and each output is written before its
caller can read it. Both are kept a batch to a row, so a map of 10,000 inputs is tens of
rows, not 20,000. Outputs are group-committed (:class:`OutputWriter`): those finished
within a few milliseconds of each other, across calls, are written in one transaction
and then released to their callers in order, so a map pays one commit per batch, not
one per input.

After a restart the server rebuilds each unfinished call from these rows
(:meth:`DurableCalls.load`): the outputs it had, for callers to read again, and the
inputs without a final output, which go back to their function's queue.

``.remote()`` calls are not durable: their caller is waiting on them, and sends the call
again if the server lost it (the SDK does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ..protocol.wire import InputItem, OutputItem, decode, encode
from .calls import CallState
from .store import Store
from .store.database import table_of
from .store.models import CallInputBatchRow, CallOutputBatchRow, CallRow

log = logging.getLogger("skiff.durable")

DURABLE_KINDS = ("spawn", "map")
GROUP_COMMIT_S = 0.005  # how long a finished output may wait for others to share its commit


@dataclass
class Recovered:
    """One unfinished call as the database held it."""

    call: CallState  # its outputs restored
    pending: list[InputItem] = field(default_factory=list)  # inputs with no final output


class DurableCalls:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- writes ---------------------------------------------------------------------------
    # Inputs and outputs are written a batch to a row: the inputs one request brought, the
    # outputs of one call one group commit wrote. Which input indices a call has is known
    # in memory (``CallState.received``), so an input sent twice is dropped before this.

    def create(self, call: CallState, inputs: list[InputItem], complete: bool) -> None:
        """Write a new call and its first inputs."""
        with self.store.session() as s, s.begin():
            s.execute(table_of(CallRow).insert(), [{
                "id": call.id, "function_id": call.function_id, "kind": call.kind, "status": "pending",
                "created_at": call.created_at, "finished_at": None, "num_inputs": 0, "num_failures": 0,
                "inputs_complete": complete, "owner": call.owner}])
            self._write_inputs(s, call.id, inputs)

    def add_inputs(self, call_id: str, inputs: list[InputItem], complete: bool) -> None:
        with self.store.session() as s, s.begin():
            self._write_inputs(s, call_id, inputs)
            if complete:
                s.execute(update(CallRow).where(CallRow.id == call_id).values(inputs_complete=True))

    @staticmethod
    def _write_inputs(s: Session, call_id: str, inputs: list[InputItem]) -> None:
        if inputs:
            s.execute(table_of(CallInputBatchRow).insert(), [{
                "call_id": call_id, "first_idx": min(i.idx for i in inputs), "inputs": [encode(i) for i in inputs]}])

    def cancelled(self, call_id: str) -> None:
        with self.store.session() as s, s.begin():
            s.execute(update(CallRow).where(CallRow.id == call_id).values(inputs_complete=True, status="cancelled"))

    def write_outputs(self, rows: list[tuple[str, OutputItem]]) -> None:
        by_call: dict[str, list[OutputItem]] = {}
        for call_id, item in rows:
            by_call.setdefault(call_id, []).append(item)
        with self.store.session() as s, s.begin():
            s.execute(table_of(CallOutputBatchRow).insert(), [
                {"call_id": call_id, "first_seq": items[0].seq, "outputs": [encode(i) for i in items]}
                for call_id, items in by_call.items()])

    def forget(self, call_ids: list[str]) -> None:
        """Drop what was kept of calls their callers have read in full (or that expired)."""
        if not call_ids:
            return
        with self.store.session() as s, s.begin():
            s.execute(delete(CallInputBatchRow).where(CallInputBatchRow.call_id.in_(call_ids)))
            s.execute(delete(CallOutputBatchRow).where(CallOutputBatchRow.call_id.in_(call_ids)))

    # -- after a restart -------------------------------------------------------------------

    def load(self) -> list[Recovered]:
        """Every durable call the last run left unfinished or unread (a spawned call's result
        is kept for ``.get()`` until it expires)."""
        found = []
        with self.store.session() as s:
            kept = select(CallInputBatchRow.call_id).distinct()  # forget() drops a call's rows once it is read
            for row in s.scalars(select(CallRow).where(CallRow.id.in_(kept))):
                outputs = [decode(OutputItem, o) for b in s.scalars(
                    select(CallOutputBatchRow).where(CallOutputBatchRow.call_id == row.id)
                    .order_by(CallOutputBatchRow.first_seq)) for o in b.outputs]
                inputs = sorted((decode(InputItem, i) for b in s.scalars(
                    select(CallInputBatchRow).where(CallInputBatchRow.call_id == row.id)) for i in b.inputs),
                    key=lambda i: i.idx)
                finished = {o.idx for o in outputs if o.gen_index is None or o.gen_done}
                call = CallState(id=row.id, function_id=row.function_id, kind=row.kind, owner=row.owner,
                                 created_at=row.created_at, cancelled=row.status == "cancelled")
                call.restore(outputs, received={i.idx for i in inputs}, inputs_complete=row.inputs_complete)
                found.append(Recovered(call=call, pending=[i for i in inputs if i.idx not in finished]))
        return found


class OutputWriter:
    """Group commit for outputs of durable calls: each is written, then handed to its
    call (and so to its caller), in the order it was finished."""

    def __init__(self, durable: DurableCalls, on_done: Callable[[CallState], None]) -> None:
        self.durable = durable
        self.on_done = on_done
        self._pending: list[tuple[CallState, OutputItem, bool]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="durable-outputs")

    def add(self, call: CallState, item: OutputItem, final: bool) -> None:
        item.seq = call.reserve_seq()
        self._pending.append((call, item, final))
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(GROUP_COMMIT_S)
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            started = time.monotonic()
            delay = 0.1
            while True:  # an output is handed out only once it is written: a failed write is tried again
                try:
                    await self.durable.store.run(self.durable.write_outputs, [(c.id, item) for c, item, _ in batch])
                    break
                except Exception:
                    log.exception("writing %d outputs failed; trying again in %.1f s", len(batch), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            for call, item, final in batch:
                call.add_output(item, final=final, seq_reserved=True)
                if final and call.done:
                    self.on_done(call)
            if time.monotonic() - started > 1:
                log.warning("writing %d outputs took %.1f s", len(batch), time.monotonic() - started)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        batch, self._pending = self._pending, []
        if batch:
            await self.durable.store.run(self.durable.write_outputs, [(c.id, item) for c, item, _ in batch])

"""Inputs and outputs in flight: the hot path of every call.

An :class:`Input` waits in its function's :class:`InputQueue` until a container's
long-poll takes it; its output lands in its :class:`CallState`, where the caller's
long-poll picks it up. Everything here is in memory and driven by asyncio events, with
no timers on the hot path.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from ..protocol.wire import ContainerInput, OutputItem, Payload


@dataclass(eq=False)
class Input:
    call: CallState
    idx: int
    args: Payload
    attempt: int = 0  # 0 for the first try, n for the n-th retry
    container_id: str | None = None
    started_at: float = 0.0
    timer: asyncio.TimerHandle | None = None
    gen_items: int = 0
    # Handed out alone: it was among several a container held when it died, and which of
    # them killed it is unknown until each runs by itself.
    solo: bool = False

    @property
    def id(self) -> str:
        return f"{self.call.id}:{self.idx}"

    def to_wire(self) -> ContainerInput:
        return ContainerInput(input_id=self.id, args=self.args)


@dataclass(eq=False)
class CallState:
    """One ``FunctionCall``: a ``.remote()``, a ``.spawn()`` or a whole ``.map()``."""

    id: str
    function_id: str
    kind: str
    owner: str = ""  # the container that started it, "" for the admin's clients
    durable: bool = False  # its inputs and outputs are in the database (see durable.py)
    forgetting: bool = False  # its caller has every output; it is dropped shortly
    received: set[int] = field(default_factory=set)  # a durable call's input indices, to drop ones sent twice
    created_at: float = field(default_factory=time.time)
    num_inputs: int = 0
    inputs_complete: bool = False
    num_final: int = 0
    num_failures: int = 0
    cancelled: bool = False
    finished_at: float | None = None
    delivered: bool = False  # the last output has been handed to the caller
    _outputs: deque[OutputItem] = field(default_factory=deque)
    _next_seq: int = 1
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def done(self) -> bool:
        return self.inputs_complete and self.num_final >= self.num_inputs

    def reserve_seq(self) -> int:
        """The next output's place in the stream, taken before it is written down."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def add_output(self, item: OutputItem, *, final: bool, seq_reserved: bool = False) -> None:
        if not seq_reserved:
            item.seq = self.reserve_seq()
        self._outputs.append(item)
        if final:
            self.num_final += 1
            if item.status != "success":
                self.num_failures += 1
            if self.done and self.finished_at is None:
                self.finished_at = time.time()
        self._wake()

    def restore(self, outputs: list[OutputItem], received: set[int], inputs_complete: bool) -> None:
        """The state of a durable call the database kept across a restart."""
        self.durable = True
        self.received = set(received)
        self.num_inputs = len(received)
        self.inputs_complete = inputs_complete
        for item in outputs:
            self._outputs.append(item)
            if item.gen_index is None or item.gen_done:
                self.num_final += 1
                self.num_failures += item.status != "success"
        self._next_seq = max((o.seq for o in outputs), default=0) + 1
        if self.done:
            self.finished_at = time.time()

    def mark_inputs_complete(self) -> None:
        self.inputs_complete = True
        if self.done and self.finished_at is None:
            self.finished_at = time.time()
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def acknowledge(self, seq: int) -> None:
        """Forget outputs the caller confirmed it has (seq <= ``seq``): keeps maps flat.
        A spawned call keeps its outputs, so ``.get()`` can be called again."""
        if self.kind == "spawn":
            return
        while self._outputs and self._outputs[0].seq <= seq:
            self._outputs.popleft()

    def pending_outputs(self, after: int, limit: int) -> list[OutputItem]:
        out: list[OutputItem] = []
        for item in self._outputs:
            if item.seq > after:
                out.append(item)
                if len(out) >= limit:
                    break
        return out

    async def wait_outputs(self, after: int, timeout: float, limit: int = 1000) -> list[OutputItem]:
        deadline = time.monotonic() + timeout
        while True:
            items = self.pending_outputs(after, limit)
            if items or self.done:
                return items
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return []

    def all_delivered(self, after: int) -> bool:
        return self.done and not any(item.seq > after for item in self._outputs)


class InputQueue:
    """A function's pending inputs, and the containers long-polling for them."""

    def __init__(self) -> None:
        self._pending: deque[Input] = deque()
        self._waiters: deque[tuple[asyncio.Future[list[Input]], int]] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def waiting_containers(self) -> int:
        return sum(1 for fut, _ in self._waiters if not fut.done())

    def put(self, inputs: list[Input], *, front: bool = False) -> None:
        if front:
            self._pending.extendleft(reversed(inputs))
        else:
            self._pending.extend(inputs)
        self._hand_out()

    def _take(self, n: int) -> list[Input]:
        taken: list[Input] = []
        while self._pending and len(taken) < n:
            inp = self._pending.popleft()
            if not inp.call.cancelled:
                taken.append(inp)
        return taken

    def _hand_out(self) -> None:
        while self._waiters and self._pending:
            fut, want = self._waiters.popleft()
            if fut.done():
                continue
            taken = self._take(want)
            if taken:
                fut.set_result(taken)

    async def get(self, want: int, timeout: float) -> list[Input]:
        """Up to ``want`` inputs, waiting up to ``timeout`` seconds for the first one."""
        taken = self._take(want)
        if taken or timeout <= 0:
            return taken
        fut: asyncio.Future[list[Input]] = asyncio.get_running_loop().create_future()
        self._waiters.append((fut, want))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return []
        except asyncio.CancelledError:
            # The HTTP request went away. If inputs were already handed to it, put them back.
            if fut.done() and not fut.cancelled():
                self.put(fut.result(), front=True)
            raise

    def drop_call(self, call: CallState) -> int:
        before = len(self._pending)
        self._pending = deque(i for i in self._pending if i.call is not call)
        return before - len(self._pending)

    def drain(self) -> list[Input]:
        inputs = list(self._pending)
        self._pending.clear()
        return inputs

    def wake_all(self) -> None:
        """Release every waiting container with no inputs (used when a function stops)."""
        while self._waiters:
            fut, _ = self._waiters.popleft()
            if not fut.done():
                fut.set_result([])

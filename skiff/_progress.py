"""Live views for the terminal: image build progress. Falls back to plain lines when
output is not a terminal (CI logs, pipes)."""

from __future__ import annotations

import sys
from collections import deque
from typing import Any

TAIL_LINES = 8


class BuildProgress:
    """Shows each image step as it runs, with the step's own output underneath."""

    def __init__(self, image_id: str, total_steps: int) -> None:
        self.image_id = image_id
        self.total = total_steps
        self.done: list[str] = []
        self.current: str | None = None
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.live: Any = None
        self.plain = not sys.stderr.isatty()

    def __enter__(self) -> BuildProgress:
        if not self.plain:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self._render(), console=Console(stderr=True), refresh_per_second=8, transient=False)
            self.live.__enter__()
        else:
            print(f"Building image {self.image_id[:12]}", file=sys.stderr)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.current = None
            self.tail.clear()
            self.live.update(self._render())
            self.live.__exit__(*exc)

    def _render(self) -> Any:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.text import Text

        parts: list[Any] = [Text(f"Building image {self.image_id[:12]}", style="bold")]
        parts += [Text(line) for line in self.done]
        if self.current:
            parts.append(Spinner("dots", text=Text(self.current, style="cyan")))
            parts += [Text("    " + line[:200], style="dim") for line in self.tail]
        return Group(*parts)

    def event(self, ev: dict[str, Any]) -> None:
        kind = ev["type"]
        if kind == "cached":
            self._line(f"✓ step {ev['index'] + 1}/{self.total} {ev['description']} (cached)")
        elif kind == "step":
            self.current = f"step {ev['index'] + 1}/{self.total} {ev['description']}"
            self.tail.clear()
            if self.plain:
                print(f"→ {self.current}", file=sys.stderr)
        elif kind == "line":
            self.tail.append(ev["text"])
            if self.plain:
                print(f"    {ev['text']}", file=sys.stderr)
        elif kind == "done":
            desc, self.current = self.current, None
            self._line(f"✓ {desc} ({ev['seconds']:.1f}s)")
        if self.live is not None:
            self.live.update(self._render())

    def _line(self, text: str) -> None:
        self.done.append(text)
        if self.plain:
            print(text, file=sys.stderr)


class MapProgress:
    """A progress bar for a long ``.map()`` on a terminal; does nothing elsewhere."""

    MIN_INPUTS = 100  # shorter maps finish before a bar is worth drawing
    REFRESH = 0.1  # seconds between redraws: cheap even at thousands of outputs a second

    def __init__(self, tag: str, total: int | None, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty() and (total is None or total >= self.MIN_INPUTS)
        self.tag, self.total = tag, total
        self.done = 0
        self._last = 0.0
        self._progress: Any = None

    def __enter__(self) -> MapProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(TextColumn(f"[bold]{self.tag}.map"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task("map", total=self.total)
        return self

    def advance(self) -> None:
        self.done += 1
        if self._progress is not None:
            import time

            now = time.monotonic()
            if now - self._last >= self.REFRESH:
                self._last = now
                self._progress.update(self._task, completed=self.done)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

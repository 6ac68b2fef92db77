"""What the CLI's commands share: running SDK coroutines, and tables."""

from __future__ import annotations

import sys
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import click

from .._sync import run_sync
from ..exception import Error

_T = TypeVar("_T")


def call(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run an SDK coroutine; skiff's errors print as one clear line, not a traceback."""
    try:
        result: _T = run_sync(coro)
        return result
    except Error as exc:
        raise click.ClickException(str(exc)) from None


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for i, col in enumerate(columns):
        t.add_column(col, no_wrap=i == 0)
    for row in rows:
        t.add_row(*(str(v) for v in row))
    # Piped output is not cut to 80 columns: scripts read these lines whole.
    Console(width=None if sys.stdout.isatty() else 200).print(t)

"""The :class:`Store`: engine set-up, migrations, and every query the server makes.

Queries are plain synchronous SQLAlchemy. The asyncio server runs them on the store's
own small thread pool (one thread for SQLite, whose writers serialize anyway), so the
event loop never blocks on the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import CursorResult, Result, Table, create_engine, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .models import AppRow, Base, CallRow, ContainerRow, FunctionRow, LogRow, ScheduleRow

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=8)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. ``Session.execute`` types every result as a
    plain :class:`Result`; for such a statement it is a :class:`CursorResult`."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def table_of(model: type[Base]) -> Table:
    """The model's table, for Core inserts (declarative types ``__table__`` as any FROM clause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        workers = 1 if url.startswith("sqlite") else 4
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="skiff-db")

    def migrate(self) -> None:
        migrate(self.engine)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking store method off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.dispose()

    def session(self) -> Session:
        return self._session()

    # -- apps -------------------------------------------------------------------------

    def create_app(self, app_id: str, name: str, kind: str) -> AppRow:
        now = time.time()
        row = AppRow(id=app_id, name=name, kind=kind, state=kind, created_at=now, last_heartbeat=now)
        with self.session() as s, s.begin():
            s.add(row)
        return row

    def get_app(self, app_id: str) -> AppRow | None:
        with self.session() as s:
            return s.get(AppRow, app_id)

    def find_apps(self, name_or_id: str) -> list[AppRow]:
        with self.session() as s:
            rows = s.scalars(
                select(AppRow)
                .where((AppRow.id == name_or_id) | (AppRow.name == name_or_id))
                .order_by(AppRow.created_at.desc())
            )
            return list(rows)

    def list_apps(self, limit: int = 100) -> list[AppRow]:
        with self.session() as s:
            return list(s.scalars(select(AppRow).order_by(AppRow.created_at.desc()).limit(limit)))

    def touch_apps(self, heartbeats: dict[str, float]) -> None:
        with self.session() as s, s.begin():
            for app_id, ts in heartbeats.items():
                s.execute(update(AppRow).where(AppRow.id == app_id).values(last_heartbeat=ts))

    def set_app_state(self, app_id: str, state: str) -> None:
        values: dict[str, Any] = {"state": state}
        if state == "stopped":
            values["stopped_at"] = time.time()
        with self.session() as s, s.begin():
            s.execute(update(AppRow).where(AppRow.id == app_id).values(**values))

    def live_apps(self) -> list[AppRow]:
        with self.session() as s:
            return list(s.scalars(select(AppRow).where(AppRow.state.in_(["ephemeral", "deployed"]))))

    # -- functions ----------------------------------------------------------------------

    def create_function(self, function_id: str, app_id: str, name: str, spec: dict[str, Any], version: int = 0) -> None:
        with self.session() as s, s.begin():
            s.add(FunctionRow(id=function_id, app_id=app_id, name=name, spec=spec, created_at=time.time(),
                              version=version))

    def get_function(self, function_id: str) -> FunctionRow | None:
        with self.session() as s:
            return s.get(FunctionRow, function_id)

    def app_functions(self, app_id: str) -> list[FunctionRow]:
        with self.session() as s:
            return list(s.scalars(select(FunctionRow).where(FunctionRow.app_id == app_id)))

    # -- calls ---------------------------------------------------------------------------

    def record_calls(self, created: list[dict[str, Any]], finished: list[dict[str, Any]]) -> None:
        """New call rows, then the end of calls, in one transaction (see journal.py)."""
        with self.session() as s, s.begin():
            if created:  # a call sent again under its id (after a restart) has its row already
                known = set(s.scalars(select(CallRow.id).where(CallRow.id.in_([r["id"] for r in created]))))
                created = [r for r in created if r["id"] not in known]
            if created:
                s.execute(table_of(CallRow).insert(), created)
            if finished:
                s.execute(update(CallRow), finished)  # one executemany, by primary key

    # -- containers ------------------------------------------------------------------------

    def container_started(self, container_id: str, app_id: str, function_id: str, runtime: str) -> None:
        with self.session() as s, s.begin():
            s.add(
                ContainerRow(
                    id=container_id, app_id=app_id, function_id=function_id, runtime=runtime,
                    state="running", started_at=time.time(),
                )
            )

    def container_stopped(self, container_id: str, exit_code: int | None, reason: str,
                          at: float | None = None) -> None:
        with self.session() as s, s.begin():
            s.execute(
                update(ContainerRow)
                .where(ContainerRow.id == container_id)
                .values(state="stopped", stopped_at=time.time() if at is None else at, exit_code=exit_code,
                        stop_reason=reason)
            )

    def running_containers(self) -> list[ContainerRow]:
        with self.session() as s:
            return list(s.scalars(select(ContainerRow).where(ContainerRow.state == "running")))

    # -- logs ------------------------------------------------------------------------------

    def append_logs(self, rows: list[dict[str, Any]]) -> None:
        with self.session() as s, s.begin():
            s.execute(table_of(LogRow).insert(), rows)

    def read_logs(self, app_id: str, after: int, limit: int = 1000) -> list[LogRow]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(LogRow).where(LogRow.app_id == app_id, LogRow.seq > after).order_by(LogRow.seq).limit(limit)
                )
            )

    # -- deployments ---------------------------------------------------------------------

    def find_deployed(self, name: str) -> AppRow | None:
        with self.session() as s:
            return s.scalar(select(AppRow).where(AppRow.name == name, AppRow.kind == "deployed"))

    def create_deployed(self, app_id: str, name: str) -> AppRow:
        now = time.time()
        row = AppRow(id=app_id, name=name, kind="deployed", state="deploying", created_at=now,
                     last_heartbeat=now, version=0)
        with self.session() as s, s.begin():
            s.add(row)
        return row

    def max_version(self, app_id: str) -> int:
        with self.session() as s:
            return s.scalar(select(func.max(FunctionRow.version)).where(FunctionRow.app_id == app_id)) or 0

    def version_functions(self, app_id: str, version: int) -> list[FunctionRow]:
        with self.session() as s:
            return list(s.scalars(select(FunctionRow).where(FunctionRow.app_id == app_id, FunctionRow.version == version)))

    def versions(self, app_id: str) -> list[tuple[int, float, list[str]]]:
        with self.session() as s:
            rows = s.execute(select(FunctionRow.version, FunctionRow.created_at, FunctionRow.name)
                             .where(FunctionRow.app_id == app_id).order_by(FunctionRow.version))
            out: dict[int, tuple[float, list[str]]] = {}
            for version, created, name in rows:
                if version == 0 or "[" in name:
                    continue  # class variants are made on demand, not deployed
                when, names = out.setdefault(version, (created, []))
                names.append(name)
            return [(v, when, names) for v, (when, names) in sorted(out.items())]

    def deploy_version(self, app_id: str, version: int) -> None:
        with self.session() as s, s.begin():
            s.execute(update(AppRow).where(AppRow.id == app_id).values(version=version, state="deployed", stopped_at=None))

    def schedule_state(self, app_id: str, function: str) -> ScheduleRow | None:
        with self.session() as s:
            return s.get(ScheduleRow, (app_id, function))

    def save_schedule(self, app_id: str, function: str, last_run_at: float | None, next_run_at: float) -> None:
        with self.session() as s, s.begin():
            row = s.get(ScheduleRow, (app_id, function))
            if row is None:
                s.add(ScheduleRow(app_id=app_id, function=function, last_run_at=last_run_at, next_run_at=next_run_at))
            else:
                row.last_run_at, row.next_run_at = last_run_at, next_run_at

    def schedule_runs(self, app_id: str, limit: int = 50) -> list[tuple[str, float, str]]:
        with self.session() as s:
            rows = s.execute(
                select(FunctionRow.name, CallRow.created_at, CallRow.status)
                .join(FunctionRow, CallRow.function_id == FunctionRow.id)
                .where(FunctionRow.app_id == app_id, CallRow.kind == "schedule")
                .order_by(CallRow.created_at.desc()).limit(limit)
            )
            return [(n, t, st) for n, t, st in rows]

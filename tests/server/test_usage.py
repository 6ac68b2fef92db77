"""Metering: container time per function within a window, on a real (SQLite) store."""

from __future__ import annotations

import os
import time

import pytest
from click import BadParameter
from sqlalchemy import select, update

from skiff.cli.usage import parse_since
from skiff.server.store import Store
from skiff.server.store.models import ContainerRow
from skiff.server.usage import stop_leftover_containers, usage


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'usage.db'}")
    store.migrate()
    store.create_app("ap-1", "batch", "ephemeral")
    store.create_app("ap-2", "web", "deployed")
    store.create_function("fu-1", "ap-1", "embed", {"gpu": "A100:2", "cpu": 2.0, "memory": 2048})
    store.create_function("fu-2", "ap-1", "prep", {})
    store.create_function("fu-3", "ap-2", "serve", {})
    yield store
    store.close()


def container(store: Store, cid: str, app: str, fn: str, started: float, stopped: float | None) -> None:
    store.container_started(cid, app, fn, "oci")
    with store.session() as s, s.begin():
        s.execute(update(ContainerRow).where(ContainerRow.id == cid)
                  .values(started_at=started, stopped_at=stopped, state="running" if stopped is None else "stopped"))


def test_each_container_is_metered_from_start_to_stop_within_the_window(store):
    container(store, "ta-1", "ap-1", "fu-1", 100.0, 130.0)  # 30 s
    container(store, "ta-2", "ap-1", "fu-1", 120.0, 180.0)  # 60 s, 40 of them before 160
    container(store, "ta-3", "ap-1", "fu-2", 50.0, 90.0)  # before the window: not counted
    container(store, "ta-4", "ap-2", "fu-3", 150.0, None)  # still running: counted up to the window's end
    rows = {(r.app, r.function): r for r in usage(store, since=95.0, until=160.0)}
    assert set(rows) == {("batch", "embed"), ("web", "serve")}
    embed = rows[("batch", "embed")]
    assert embed.containers == 2 and embed.seconds == pytest.approx(70.0)
    assert embed.gpu_seconds == pytest.approx(140.0)  # two GPUs each
    assert embed.cpu_seconds == pytest.approx(140.0) and embed.memory_gib_seconds == pytest.approx(140.0)
    serve = rows[("web", "serve")]
    assert serve.seconds == pytest.approx(10.0) and serve.cpu_seconds is None and serve.gpu is None


def test_usage_of_one_app(store):
    container(store, "ta-1", "ap-1", "fu-2", 100.0, 110.0)
    container(store, "ta-2", "ap-2", "fu-3", 100.0, 110.0)
    assert [r.function for r in usage(store, since=0, until=200, app="web")] == ["serve"]
    assert usage(store, since=0, until=200, app="nope") == []


def test_since_takes_spans_and_dates():
    assert parse_since("90m", now=10_000.0) == 10_000.0 - 5400
    assert parse_since("7d", now=1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert parse_since("2026-11-01") > 0
    with pytest.raises(BadParameter, match="neither a span back from now"):
        parse_since("last week")


def test_containers_a_crashed_server_left_are_metered_until_it_was_last_seen(store, tmp_path):
    now = time.time()
    container(store, "ta-1", "ap-1", "fu-2", now - 300, None)  # running when the server died
    container(store, "ta-2", "ap-1", "fu-2", now - 20, None)  # started after it was last seen
    alive = tmp_path / "alive"
    alive.touch()
    os.utime(alive, (now - 200, now - 200))
    stop_leftover_containers(store, alive, every=10)
    rows = {r.id: r for r in store.session().scalars(select(ContainerRow))}
    assert rows["ta-1"].state == "stopped" and rows["ta-1"].stopped_at == pytest.approx(now - 190, abs=1)
    assert rows["ta-2"].stopped_at == pytest.approx(now - 20, abs=1)  # never before its start
    container(store, "ta-3", "ap-1", "fu-2", now - 50, None)
    stop_leftover_containers(store, tmp_path / "never-written", every=10)
    assert store.session().get(ContainerRow, "ta-3").stopped_at == pytest.approx(time.time(), abs=2)

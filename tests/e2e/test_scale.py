"""Autoscaler knobs, classes with lifecycle, concurrency and batching, observed on a
real server: container counts come from Function.get_current_stats()."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import httpx
import pytest

import skiff
from tests.apps import scale_app
from tests.apps.scale_app import app


@pytest.fixture
def running(client_env):
    with app.run(show_logs=False):
        yield client_env


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def runners(fn: skiff.Function) -> int:
    return fn.get_current_stats().num_total_runners


def test_min_containers_keeps_containers_warm(running):
    wait_for(lambda: runners(scale_app.warm) == 2, what="2 warm containers")
    time.sleep(1.0)
    assert runners(scale_app.warm) == 2


def test_max_containers_caps_scale_up(running):
    calls = [scale_app.capped.spawn(0.5) for _ in range(6)]
    peak = 0
    while not all(_done(c) for c in calls):
        peak = max(peak, runners(scale_app.capped))
        time.sleep(0.05)
    assert peak == 2
    assert len({c.get() for c in calls}) <= 2


def _done(call: skiff.FunctionCall) -> bool:
    try:
        call.get(timeout=0)
        return True
    except skiff.exception.TimeoutError:
        return False


def test_buffer_containers_add_spares_only_while_active(running):
    assert runners(scale_app.buffered) == 0  # idle function: no buffer
    call = scale_app.buffered.spawn(2.0)
    wait_for(lambda: runners(scale_app.buffered) == 2, what="1 busy + 1 buffer container")
    call.get()
    wait_for(lambda: runners(scale_app.buffered) == 0, timeout=15, what="scale to zero after activity")


def test_scales_to_zero_after_scaledown_window(running):
    assert scale_app.short_lived.remote(1) == 1
    assert runners(scale_app.short_lived) == 1
    wait_for(lambda: runners(scale_app.short_lived) == 0, timeout=10, what="scale to zero")


def test_update_autoscaler_and_stats(running):
    assert runners(scale_app.adjustable) == 0
    scale_app.adjustable.update_autoscaler(min_containers=1)
    wait_for(lambda: runners(scale_app.adjustable) == 1, what="min_containers=1 applied")
    stats = scale_app.adjustable.get_current_stats()
    assert stats.backlog == 0 and stats.num_running_inputs == 0
    scale_app.adjustable.update_autoscaler(min_containers=0, scaledown_window=1)
    wait_for(lambda: runners(scale_app.adjustable) == 0, timeout=10, what="scale back to zero")
    with pytest.raises(skiff.exception.InvalidError):
        scale_app.adjustable.update_autoscaler(max_containers=0)


def test_class_enter_runs_once_per_container_and_parameters_split_containers(running):
    small = [scale_app.Model().predict.remote(i) for i in range(3)]
    assert [r["x"] for r in small] == [0, 1, 2]
    assert all(r["loads"] == 1 for r in small) and [r["served"] for r in small] == [1, 2, 3]
    large = scale_app.Model(size="large").predict.remote(7)
    assert large["size"] == "large" and large["served"] == 1 and large["container"] != small[0]["container"]
    assert list(scale_app.Model().count_up.remote_gen(3)) == [0, 1, 2]
    assert [r["x"] for r in scale_app.Model(size="large").predict.map([1, 2])] == [1, 2]
    assert scale_app.Model().predict.local(5)["size"] == "small"


def test_class_exit_runs_when_the_app_stops(client_env):
    with app.run(show_logs=False) as running_app:
        scale_app.Model(size="exit-check").predict.remote(1)
        app_id = running_app._running.app_id  # type: ignore[union-attr]
    token = (client_env.home / "token").read_text().strip()

    def logged() -> str:
        res = httpx.get(f"{client_env.url}/v1/apps/{app_id}/logs", params={"timeout": 0},
                        headers={"Authorization": f"Bearer {token}"})
        return " ".join(e["text"] for e in res.json()["entries"])

    wait_for(lambda: "exit ran for exit-check after 1 inputs" in logged(), timeout=15, what="@exit log line")
    assert "enter ran for exit-check" in logged()


def test_class_parameters_are_checked():
    with pytest.raises(skiff.exception.InvalidError, match="unknown parameter"):
        scale_app.Model(colour="red")
    with pytest.raises(AttributeError, match="predict"):
        scale_app.Model().nope  # noqa: B018


def test_concurrent_sync_inputs_overlap_in_one_container(running):
    results = list(scale_app.overlap.map([1.0] * 4))
    starts, ends = [r[0] for r in results], [r[1] for r in results]
    assert max(starts) < min(ends)  # all four ran at the same time
    assert len({r[2] for r in results}) == 4  # in four threads


def test_concurrent_async_inputs_overlap(running):
    started = time.monotonic()
    results = list(scale_app.overlap_async.map([1.0] * 10))
    assert max(r[0] for r in results) < min(r[1] for r in results)
    assert time.monotonic() - started < 6


def test_batched_calls_are_gathered_and_split(running):
    results = list(scale_app.batch_sizes.map(range(16)))
    assert [x for x, _ in results] == list(range(16))
    assert max(size for _, size in results) > 1  # real batches formed
    assert all(size <= 8 for _, size in results)
    assert scale_app.batch_sizes.remote(5) == (5, 1)


def test_batched_function_returning_the_wrong_length_fails_clearly(running):
    with pytest.raises(ValueError, match="must return a list of"):
        list(scale_app.wrong_length.map([1, 2, 3, 4]))


def _cpu_seconds(pid: int) -> float:
    from pathlib import Path

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_server_with_warm_containers_stays_idle(running):
    """Containers kept by min_containers outlive their scaledown window without the
    scaling loop waking up again and again."""
    scale_app.warm.update_autoscaler(scaledown_window=1)
    wait_for(lambda: runners(scale_app.warm) == 2, what="2 warm containers")
    time.sleep(1.5)  # past the window
    before = _cpu_seconds(running.proc.pid)
    time.sleep(2.0)
    assert _cpu_seconds(running.proc.pid) - before < 0.5

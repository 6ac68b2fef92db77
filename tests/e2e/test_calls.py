"""The core loop against a real server with process containers."""

from __future__ import annotations

import os
import signal
import time

import pytest

import skiff
from skiff.exception import (
    ExecutionError,
    FunctionTimeoutError,
    InputCancellation,
    SerializationError,
)
from tests.apps import core_app
from tests.apps.core_app import app
from tests.conftest import container_pids


@pytest.fixture
def running(client_env):
    with app.run(show_logs=False):
        yield client_env


def test_remote_returns_result(running):
    assert core_app.square.remote(7) == 49
    assert core_app.add.remote(2, b=3) == 5


def test_map_preserves_order_and_fans_out(running):
    assert list(core_app.square.map(range(50))) == [x * x for x in range(50)]
    assert list(core_app.add.map([1, 2, 3], [10, 20, 30])) == [11, 22, 33]
    assert sorted(core_app.square.map(range(20), order_outputs=False)) == sorted(x * x for x in range(20))


def test_map_of_nothing(running):
    assert list(core_app.square.map([])) == []


def test_starmap_and_for_each(running):
    assert list(core_app.add.starmap([(1, 2), (3, 4)])) == [3, 7]
    assert core_app.square.for_each(range(5)) is None


def test_spawn_get_and_from_id(running):
    call = core_app.square.spawn(9)
    assert call.get() == 81
    assert call.get() == 81  # a spawned result can be collected again
    again = skiff.FunctionCall.from_id(call.object_id)
    assert again.get(timeout=5) == 81
    calls = [core_app.square.spawn(i) for i in range(4)]
    assert skiff.FunctionCall.gather(*calls) == [0, 1, 4, 9]


def test_get_timeout(running):
    call = core_app.slow.spawn(3)
    with pytest.raises(skiff.exception.TimeoutError):
        call.get(timeout=0.2)
    assert call.get() == 3


def test_remote_gen_streams_items(running):
    assert list(core_app.countdown.remote_gen(4)) == [4, 3, 2, 1]
    with pytest.raises(skiff.exception.InvalidError, match="remote_gen"):
        core_app.countdown.remote(3)


def test_remote_exception_keeps_type_and_traceback(running):
    with pytest.raises(core_app.Boom, match="bad input 3") as info:
        core_app.fails.remote(3)
    cause = info.value.__cause__
    assert cause is not None and "_explode" in str(cause) and "Remote traceback" in str(cause)


def test_map_return_exceptions(running):
    results = list(core_app.fails.map([1, 2], return_exceptions=True))
    assert all(isinstance(r, core_app.Boom) for r in results)
    with pytest.raises(core_app.Boom):
        list(core_app.fails.map([1, 2]))


def test_timeout_raises_function_timeout_error(running):
    started = time.monotonic()
    with pytest.raises(FunctionTimeoutError, match="sleeps: timed out after 1 s"):
        core_app.sleeps.remote(30)
    assert time.monotonic() - started < 10


def test_retries_until_success(running):
    assert core_app.flaky.remote("until-3", 3) == 3


def test_retries_exhausted_raise_last_error(running):
    with pytest.raises(RuntimeError, match="attempt 4 fails"):
        core_app.flaky.remote("never", 10)


def _kill_containers_when_running(function: skiff.Function, settle: float = 1.0) -> None:
    """SIGKILL every process of the function's containers once one is running an input."""
    deadline = time.monotonic() + 30
    while not container_pids(function.object_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(settle)  # let it take the input
    for pid in container_pids(function.object_id):
        os.kill(pid, signal.SIGKILL)


def test_container_killed_mid_input_is_retried(running):
    call = core_app.sleeps_then_answers.spawn(2)
    _kill_containers_when_running(core_app.sleeps_then_answers)
    assert call.get(timeout=30) == "answered"


def test_container_killed_without_retries_fails_clearly(running):
    call = core_app.sleeps_forever.spawn()
    _kill_containers_when_running(core_app.sleeps_forever)
    with pytest.raises(ExecutionError, match="container running this input died.*SIGKILL"):
        call.get(timeout=30)


def test_unpicklable_argument(running):
    import threading

    with pytest.raises(SerializationError, match="argument 0 to echo\\(\\) cannot be pickled"):
        core_app.echo.remote(threading.Lock())


def test_large_payloads_use_the_blob_store(running):
    big = b"a" * (3 * 1024 * 1024)
    assert core_app.blob_size.remote(big) == len(big)
    assert len(core_app.make_bytes.remote(3 * 1024 * 1024)) == 3 * 1024 * 1024


def test_cancel_a_running_call(running):
    call = core_app.slow.spawn(30)
    time.sleep(1.0)
    call.cancel()
    with pytest.raises(InputCancellation):
        call.get(timeout=10)


def test_local_runs_in_process():
    assert core_app.square.local(4) == 16


def test_calling_before_the_app_runs_says_how():
    with pytest.raises(ExecutionError, match="app.run"):
        core_app.square.remote(2)


def test_spawn_map_returns_at_once_and_collects_by_index(running):
    call = core_app.square.spawn_map(range(5))
    assert call.num_inputs() == 5
    assert [call.get(index=i) for i in range(5)] == [0, 1, 4, 9, 16]


def test_cancel_with_terminate_containers_stops_them(running):
    call = core_app.slow.spawn(30)
    deadline = time.monotonic() + 20
    while not container_pids(core_app.slow.object_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    call.cancel(terminate_containers=True)
    with pytest.raises(InputCancellation):
        call.get(timeout=10)
    deadline = time.monotonic() + 10
    while container_pids(core_app.slow.object_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert container_pids(core_app.slow.object_id) == []

"""The core loop against a real server with process containers."""

from __future__ import annotations

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


def test_retries_until_success(running, tmp_path):
    assert core_app.flaky.remote(str(tmp_path / "n"), 3) == 3


def test_retries_exhausted_raise_last_error(running, tmp_path):
    with pytest.raises(RuntimeError, match="attempt 4 fails"):
        core_app.flaky.remote(str(tmp_path / "n"), 10)


def test_container_killed_mid_input_is_retried(running, tmp_path):
    marker = tmp_path / "marker"
    pid = core_app.dies_once.remote(str(marker))
    assert int(marker.read_text()) != pid  # the second try ran in a new container


def test_container_killed_without_retries_fails_clearly(running, tmp_path):
    import os
    import signal

    pid_file = tmp_path / "pid"
    call = core_app.always_dies.spawn(str(pid_file))
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    with pytest.raises(ExecutionError, match="container running this input died.*SIGKILL"):
        call.get(timeout=20)


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

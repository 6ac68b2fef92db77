"""The autoscaling policy, knob by knob, with no processes."""

from __future__ import annotations

import pytest

from skiff.server.autoscaler import (
    Knobs,
    Observed,
    containers_to_stop,
    desired_containers,
    next_expiry,
)


def seen(backlog=0, running=0, containers=0):
    return Observed(backlog=backlog, running_inputs=running, containers=containers)


def test_idle_function_wants_nothing():
    assert desired_containers(Knobs(), seen()) == 0


def test_one_container_per_input():
    assert desired_containers(Knobs(), seen(backlog=3, running=2)) == 5


def test_inputs_per_container_rounds_up():
    knobs = Knobs(inputs_per_container=4)
    assert desired_containers(knobs, seen(backlog=9)) == 3
    assert desired_containers(knobs, seen(backlog=8)) == 2
    assert desired_containers(Knobs(inputs_per_container=0), seen(backlog=2)) == 2


def test_min_containers_floor_even_when_idle():
    assert desired_containers(Knobs(min_containers=2), seen()) == 2
    assert desired_containers(Knobs(min_containers=2), seen(backlog=5)) == 5


def test_max_containers_cap():
    assert desired_containers(Knobs(max_containers=3), seen(backlog=10)) == 3
    assert desired_containers(Knobs(max_containers=3, buffer_containers=5), seen(running=1)) == 3


def test_buffer_only_while_active():
    knobs = Knobs(buffer_containers=2)
    assert desired_containers(knobs, seen()) == 0
    assert desired_containers(knobs, seen(backlog=1)) == 3
    assert desired_containers(knobs, seen(running=2)) == 4


def test_min_and_buffer_together():
    knobs = Knobs(min_containers=4, buffer_containers=1)
    assert desired_containers(knobs, seen(backlog=1)) == 4
    assert desired_containers(knobs, seen(backlog=5)) == 6


def test_containers_to_stop_waits_for_the_window():
    knobs = Knobs(scaledown_window=10.0)
    idle = {"a": 100.0, "b": 95.0}
    assert containers_to_stop(knobs, 0, idle, alive=2, now=104.0) == []
    assert containers_to_stop(knobs, 0, idle, alive=2, now=105.0) == ["b"]
    assert containers_to_stop(knobs, 0, idle, alive=2, now=110.0) == ["b", "a"]


def test_containers_to_stop_oldest_idle_first_and_keeps_desired():
    knobs = Knobs(scaledown_window=1.0)
    idle = {"new": 50.0, "old": 10.0, "mid": 30.0}
    assert containers_to_stop(knobs, 1, idle, alive=3, now=100.0) == ["old", "mid"]
    assert containers_to_stop(knobs, 2, idle, alive=4, now=100.0) == ["old", "mid"]
    assert containers_to_stop(knobs, 3, idle, alive=3, now=100.0) == []
    assert containers_to_stop(knobs, 5, idle, alive=3, now=100.0) == []


def test_containers_to_stop_ignores_busy_containers():
    # five alive, only one idle: at most that one can go, whatever the surplus
    assert containers_to_stop(Knobs(scaledown_window=1.0), 0, {"idle": 0.0}, alive=5, now=10.0) == ["idle"]


def test_next_expiry():
    knobs = Knobs(scaledown_window=60.0)
    assert next_expiry(knobs, {}, now=0.0) is None
    assert next_expiry(knobs, {"a": 100.0, "b": 90.0}, now=120.0) == pytest.approx(30.0)
    assert next_expiry(knobs, {"a": 0.0}, now=500.0) == 0.0

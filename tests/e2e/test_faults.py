"""Faults in containers: what a container's death costs the inputs it held."""

from __future__ import annotations

import uuid

import skiff
from skiff.exception import ExecutionError
from tests.apps import faults_app

N = 40


def _map(times: int) -> tuple[list, dict]:
    log_name = f"tries-{uuid.uuid4().hex[:8]}"
    kwargs = {"fatal": 3, "times": times, "log_name": log_name}
    results = list(faults_app.crashes_on.map(range(N), kwargs=kwargs, return_exceptions=True))
    return results, dict(skiff.Dict.from_name(log_name).items())


def test_a_dead_container_charges_a_retry_only_to_the_input_that_killed_it(client_env):
    """A sequential container takes quick inputs in batches (prefetch). When it dies, the
    inputs it held spend no retry; handed out alone again, the one that kills its
    container once more is known, and only it pays. The policy here allows one retry."""
    with faults_app.app.run(show_logs=False):
        # Input 3 kills its container twice: once in a batch (free), once alone (its one
        # retry). Before, every input of the batch paid for the first death, and input 3
        # had no retry left for the second.
        results, tries = _map(times=2)
        assert results == [x * 2 for x in range(N)]
        assert tries[3] == 3
        assert all(n <= 2 for x, n in tries.items() if x != 3), tries  # ran again at most once, free

        # Three deaths: input 3 runs out of retries and fails; no other input does.
        results, tries = _map(times=3)
    failed = {x: r for x, r in enumerate(results) if isinstance(r, BaseException)}
    assert set(failed) == {3} and isinstance(failed[3], ExecutionError), failed
    assert "died" in str(failed[3])
    assert tries[3] == 3

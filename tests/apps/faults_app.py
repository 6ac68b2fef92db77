"""Functions for the fault tests: containers that die in the middle of their work."""

import os

import skiff

app = skiff.App("fault-tests")


@app.function(max_containers=1, retries=skiff.Retries(max_retries=1, initial_delay=0.0, max_delay=1.0))
def crashes_on(x: int, fatal: int, times: int, log_name: str) -> int:
    """Counts its tries of each input in a Dict; on its first ``times`` tries of ``fatal``
    its container dies, holding the quick inputs after it (prefetched, not started)."""
    tries = skiff.Dict.from_name(log_name, create_if_missing=True)
    tries[x] = tries.get(x, 0) + 1
    if x == fatal and tries[x] <= times:
        os._exit(137)  # as if killed: the runtime is PID 1 in its container, which SIGKILL spares
    return x * 2


warm = skiff.App("fault-tests-warm")


@warm.function(min_containers=2)
def idle() -> int:
    return os.getpid()


slow = skiff.App("fault-tests-slow")


@slow.function(max_containers=2)
def slow_double(x: int, seconds: float) -> int:
    import time

    time.sleep(seconds)
    return x * 2

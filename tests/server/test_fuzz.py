"""Schemathesis against the API's own schema (``/openapi.json``): for every operation,
generated requests, valid and not (both of Schemathesis's generation modes), must get a documented status with a body that fits
the schema, and never a server error.

Every check runs but two, which measure how much of the server's validation the schema
spells out rather than how the server answers: ``positive_data_acceptance`` (a request
the schema allows may still break a rule only the server knows, such as a secret's keys
being environment variable names, and gets a 400 naming it) and
``negative_data_rejection`` (FastAPI's lax parsing takes ``false`` for a number). The
run is bounded: a few examples per operation, and long-polls cut to a second.

A server of its own (``process`` runtime, no image builds), since the fuzzer makes and
deletes objects at random.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance  # noqa: E402

from tests.conftest import ServerProcess  # noqa: E402

EXAMPLES = int(os.environ.get("SKIFF_FUZZ_EXAMPLES", "12"))
LONG_POLL_PARAMS = ("timeout",)  # query parameters that make a route wait


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, database_url: str | None):
    srv = ServerProcess(tmp_path_factory.mktemp("fuzz-home"), database_url,
                        env={"SKIFF_RUNTIME": "process", "SKIFF_APP_HEARTBEAT_TIMEOUT": "4"}).start()
    yield srv
    srv.stop()


def test_every_request_gets_a_documented_answer(fuzz_server: ServerProcess):
    api = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_server.token()}"}
    failures: dict[str, str] = {}
    sent = 0
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > 60

    for operation, mode in [(op, mode) for op in operations for mode in schemathesis.GenerationMode]:
        @given(case=operation.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def fuzz(case: schemathesis.Case) -> None:
            nonlocal sent
            sent += 1
            for name in LONG_POLL_PARAMS:
                if isinstance(case.query, dict) and name in case.query:
                    case.query[name] = 1
            if isinstance(case.body, dict) and "timeout" in case.body and case.path.endswith("/exchange"):
                case.body["timeout"] = 1
            case.call_and_validate(base_url=fuzz_server.url, headers=headers, timeout=30,
                                   excluded_checks=[positive_data_acceptance, negative_data_rejection])

        try:
            fuzz()
        except Unsatisfiable:
            continue  # an operation with no parameter or body has no invalid request to make
        except Exception as exc:  # noqa: BLE001 - every operation is tried; all failures are reported
            failures[f"{operation.method.upper()} {operation.path} ({mode.value} cases)"] = str(exc)[:1500]
    assert sent >= 6 * len(operations), f"only {sent} requests for {len(operations)} operations"
    assert not failures, "\n\n".join(f"{op}:\n{why}" for op, why in failures.items())

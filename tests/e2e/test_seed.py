"""The system description's snippets run with `import skiff as modal`, against a server
whose GPU inventory is given by configuration (SKIFF_GPUS): there is no GPU here."""

from __future__ import annotations

import time
import warnings

import httpx
import pytest

import skiff
from tests.conftest import ROOT, ServerProcess, skiff_cli

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from tests.apps import seed_app
OLD_NAMES = sorted({str(w.message).split(" is deprecated")[0] for w in caught if w.category is DeprecationWarning})


@pytest.fixture(scope="module")
def gpu_server(tmp_path_factory, database_url):
    server = ServerProcess(tmp_path_factory.mktemp("gpu-home"), database_url,
                           env={"SKIFF_GPUS": "A100-80GB:1,L4:2,A10G:1"}).start()
    yield server
    server.stop()


@pytest.fixture
def client(gpu_server, point_client_at):
    return point_client_at(gpu_server)


def test_old_names_are_accepted_with_a_deprecation_warning():
    assert OLD_NAMES == ["concurrency_limit=", "web_endpoint"]
    assert seed_app.embed_document.options.max_containers == 20


def test_fine_tune_runs_on_its_gpu_with_its_volume(client):
    with seed_app.app.run(show_logs=False):
        hf_home, gpus = seed_app.fine_tune.remote("s3://bucket/dataset.jsonl", "/cache/model-v2/done.txt")
    assert hf_home == "/cache" and gpus == "0"
    # The snippet never calls commit(): its container commits when it stops, after the app.
    vol = skiff.Volume.from_name("model-cache")
    deadline = time.monotonic() + 20
    while "model-v2/done.txt" not in [e.path for e in vol.listdir("/", recursive=True)]:
        assert time.monotonic() < deadline, "the volume never got the file"
        time.sleep(0.2)
    assert b"".join(vol.read_file("model-v2/done.txt")).startswith(b"trained on")


def test_map_fans_out_only_as_far_as_the_gpus_allow(client):
    documents = [f"doc {i}" for i in range(12)]
    with seed_app.app.run(show_logs=False):
        peak = 0
        results = []
        started = time.monotonic()
        for r in seed_app.embed_document.map(documents, order_outputs=True):
            results.append(r)
            peak = max(peak, seed_app.embed_document.get_current_stats().num_total_runners)
    assert [r[0] for r in results] == [float(len(d)) for d in documents]
    assert {r[1] for r in results} <= {1.0, 2.0}  # the two L4s, never the A100 (0) or A10G (3)
    assert peak <= 2
    assert time.monotonic() - started < 60


def test_web_endpoint_deploys_and_answers(client):
    result = skiff_cli("deploy", "seed_app.py", env=client.env, cwd=ROOT / "tests" / "apps", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    resp = httpx.post(f"{client.url}/my-llm-app/generate", json={"prompt": "hi"}, timeout=60)
    assert resp.json() == {"response": "HI"}


def test_a_gpu_the_machine_lacks_is_a_clear_error(client):
    app = skiff.App("wrong-gpu")

    @app.function(gpu="H100", serialized=True)
    def f() -> None: ...

    with pytest.raises(skiff.exception.InvalidError, match="needs 1 x H100 GPU, and this machine has A100-80GB, A10G, L4"):
        with app.run(show_logs=False):
            pass

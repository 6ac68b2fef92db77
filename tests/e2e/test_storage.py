"""Volumes, Secrets, Dicts and Queues on a real server, from clients and containers."""

from __future__ import annotations

import os
import queue as stdqueue
import threading
import time

import pytest

# Built at run time so the value appears in no file, the uploaded test code included.
INLINE_VALUE = "-".join(["inline", "value", str(6 * 7)])
os.environ["INLINE_TOKEN"] = INLINE_VALUE

import skiff  # noqa: E402
from skiff.exception import InvalidError, NotFoundError  # noqa: E402
from tests.apps import storage_app  # noqa: E402
from tests.apps.storage_app import app  # noqa: E402
from tests.conftest import skiff_cli  # noqa: E402

SECRET_VALUE = "sk-" + "test-0123456789abcdef"


@pytest.fixture
def with_secret_stored(client_env):
    result = skiff_cli("secret", "create", "test-api-key", f"API_KEY={SECRET_VALUE}", "--force", env=client_env.env)
    assert result.returncode == 0, result.stderr
    return client_env


@pytest.fixture
def running(with_secret_stored):
    with app.run(show_logs=False):
        yield with_secret_stored


def test_checkpoint_committed_by_one_function_is_read_by_another_after_reload(running):
    assert storage_app.read_checkpoint.remote("ckpt-a.txt", False) is None  # a warm container, old version
    storage_app.write_checkpoint.remote("ckpt-a.txt", "epoch 1")
    assert storage_app.read_checkpoint.remote("ckpt-a.txt", False) is None  # still its own version
    assert storage_app.read_checkpoint.remote("ckpt-a.txt", True) == "epoch 1"
    names = [e.path for e in storage_app.ckpt.listdir("/")]
    assert "ckpt-a.txt" in names
    assert b"".join(storage_app.ckpt.read_file("ckpt-a.txt")) == b"epoch 1"


def test_last_writer_wins_per_file(running):
    storage_app.write_checkpoint.remote("shared.txt", "first")
    storage_app.write_checkpoint.remote("shared.txt", "second")
    assert b"".join(storage_app.ckpt.read_file("shared.txt")) == b"second"


def test_changes_commit_when_a_container_stops_normally(client_env, with_secret_stored):
    with app.run(show_logs=False):
        storage_app.write_without_commit.remote("on-exit.txt", "kept")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if "on-exit.txt" in [e.path for e in storage_app.ckpt.listdir("/")]:
            break
        time.sleep(0.2)
    assert b"".join(storage_app.ckpt.read_file("on-exit.txt")) == b"kept"


def test_volume_sdk_operations(client_env, tmp_path):
    vol = skiff.Volume.from_name("test-sdk-ops", create_if_missing=True)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("A")
    (tmp_path / "one.bin").write_bytes(b"\x00" * 10)
    with vol.batch_upload(force=True) as batch:
        batch.put_file(tmp_path / "one.bin", "/bin/one.bin")
        batch.put_directory(tmp_path / "d", "/dir")
    assert sorted(e.path for e in vol.listdir("/", recursive=True)) == ["bin/one.bin", "dir/a.txt"]
    vol.copy_files(["/dir/a.txt"], "/copies/")
    assert b"".join(vol.read_file("copies/a.txt")) == b"A"
    with pytest.raises(InvalidError, match="recursive=True"):
        vol.remove_file("/dir")
    vol.remove_file("/dir", recursive=True)
    assert sorted(e.path for e in vol.listdir("/", recursive=True)) == ["bin/one.bin", "copies/a.txt"]


def test_secret_reaches_only_functions_that_name_it(running):
    assert storage_app.with_secret.remote() == {"API_KEY": SECRET_VALUE, "INLINE_TOKEN": INLINE_VALUE}
    assert storage_app.without_secret.remote() == {"API_KEY": None, "INLINE_TOKEN": None}


def test_secrets_are_never_stored_or_listed_in_plaintext(running):
    storage_app.with_secret.remote()
    home = running.home
    for path in home.rglob("*"):
        if path.is_file() and not path.is_symlink() and "images" not in path.parts:
            data = path.read_bytes()
            assert SECRET_VALUE.encode() not in data, path
            assert INLINE_VALUE.encode() not in data, path
    key_file = home / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    listing = skiff_cli("secret", "list", env=running.env)
    assert "test-api-key" in listing.stdout and "API_KEY" in listing.stdout
    assert SECRET_VALUE not in listing.stdout


def test_missing_secret_key_fails_before_any_container_starts(with_secret_stored):
    bad = skiff.App("bad-secret")

    @bad.function(secrets=[skiff.Secret.from_name("test-api-key", required_keys=["NOT_THERE"])], serialized=True)
    def f() -> None: ...

    with pytest.raises(NotFoundError, match="NOT_THERE"):
        with bad.run(show_logs=False):
            pass


def test_wrong_names_say_what_exists(with_secret_stored):
    with pytest.raises(NotFoundError, match="secrets that exist: .*test-api-key"):
        bad = skiff.App("bad-secret-name")

        @bad.function(secrets=[skiff.Secret.from_name("no-such-secret")], serialized=True)
        def f() -> None: ...

        with bad.run(show_logs=False):
            pass
    skiff.Volume.from_name("exists-for-listing", create_if_missing=True).listdir("/")
    with pytest.raises(NotFoundError, match="volumes that exist: .*exists-for-listing"):
        skiff.Volume.from_name("no-such-volume").listdir("/")


def test_dict_operations(client_env):
    d = skiff.Dict.from_name("test-dict-ops", create_if_missing=True)
    d.clear()
    d["a"] = 1
    assert d.put("a", 2, skip_if_exists=True) is False
    d.update({"b": [2]}, c=3)
    assert d["a"] == 1 and d.get("missing", "default") == "default"
    assert "b" in d and len(d) == 3
    assert sorted(d.keys()) == ["a", "b", "c"]
    assert sorted(d.values(), key=str) == sorted([1, [2], 3], key=str)
    assert d.pop("c") == 3
    with pytest.raises(KeyError):
        d.pop("c")
    with pytest.raises(InvalidError, match="limit"):
        d["huge"] = b"x" * (17 * 1024 * 1024)
    d.clear()
    assert len(d) == 0


def test_queue_operations_and_blocking_get(client_env):
    q = skiff.Queue.from_name("test-queue-ops", create_if_missing=True)
    q.clear(all=True)
    q.put_many([1, 2, 3])
    q.put("p", partition="side")
    assert q.len() == 3 and q.len(partition="side") == 1 and q.len(total=True) == 4
    assert list(q.iterate()) == [1, 2, 3]
    assert q.get() == 1 and q.get_many(5) == [2, 3]
    assert q.get(block=False) is None
    with pytest.raises(stdqueue.Empty):
        q.get(timeout=0.3)

    def later() -> None:
        time.sleep(0.5)
        skiff.Queue.from_name("test-queue-ops").put("woke")

    threading.Thread(target=later).start()
    started = time.monotonic()
    assert q.get(timeout=10) == "woke"
    assert time.monotonic() - started < 5
    with pytest.raises(InvalidError, match="limit"):
        q.put(b"x" * (2 * 1024 * 1024))


def test_containers_use_dicts_and_queues(running):
    q = skiff.Queue.from_name("test-queue", create_if_missing=True)
    q.clear(all=True)
    assert storage_app.dict_and_queue.remote("from-fn") >= 1
    assert skiff.Dict.from_name("test-dict")["from-fn"] == {"from": "container"}
    assert q.get(timeout=5) == "from-fn"


def test_everything_survives_a_server_restart(fresh_server):
    vol = skiff.Volume.from_name("restart-vol", create_if_missing=True)
    with vol.batch_upload() as batch:
        batch.put_file(__file__, "/me.py")
    d = skiff.Dict.from_name("restart-dict", create_if_missing=True)
    d["k"] = "v"
    q = skiff.Queue.from_name("restart-queue", create_if_missing=True)
    q.put("item")
    created = skiff_cli("secret", "create", "restart-secret", "X=1", env=fresh_server.env)
    assert created.returncode == 0, created.stderr

    fresh_server.stop()
    fresh_server.start()
    from skiff import _client
    from skiff._sync import run_sync

    run_sync(_client.reset_client())
    assert [e.path for e in skiff.Volume.from_name("restart-vol").listdir("/")] == ["me.py"]
    assert skiff.Dict.from_name("restart-dict")["k"] == "v"
    assert skiff.Queue.from_name("restart-queue").get(timeout=5) == "item"
    assert "restart-secret" in skiff_cli("secret", "list", env=fresh_server.env).stdout


def _volume_blobs(home) -> list:
    root = home / "volume-blobs"
    return [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"]


def test_deleting_a_volume_frees_its_blobs(fresh_server, tmp_path):
    f = tmp_path / "unique.bin"
    f.write_bytes(b"unique content " * 1000)
    vol = skiff.Volume.from_name("to-delete", create_if_missing=True)
    with vol.batch_upload() as batch:
        batch.put_file(f, "/unique.bin")
    assert len(_volume_blobs(fresh_server.home)) == 1
    deleted = skiff_cli("volume", "delete", "to-delete", "--yes", env=fresh_server.env)
    assert deleted.returncode == 0, deleted.stderr
    # A blob stored (or found already stored) moments ago may belong to a commit on its
    # way, so garbage collection keeps it for a grace period (5 s on this test server)...
    assert len(_volume_blobs(fresh_server.home)) == 1
    time.sleep(5.5)
    # ...and collects it at its next run once that has passed.
    skiff.Volume.from_name("another", create_if_missing=True).listdir("/")
    skiff_cli("volume", "delete", "another", "--yes", env=fresh_server.env)
    assert _volume_blobs(fresh_server.home) == []

"""Volume transfers: files as blocks, block dedup, batched and parallel transfers, the
same-machine channel and its HTTP fallback, and refusing content that does not match."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

import skiff
from skiff import _client
from skiff._sync import run_sync
from skiff._volume_transfer import LocalChannel, download_files
from skiff.exception import InvalidError
from skiff.protocol.volumes import BLOCK, pack_blobs, send_message
from tests.apps import volume_blocks_app
from tests.conftest import skiff_cli


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def client():
    return run_sync(_client.get_client())


def raw_entries(name: str, path: str = "") -> dict[str, dict]:
    res = run_sync(client().request("GET", f"/volumes/{name}/ls", params={"path": path, "recursive": True}))
    return {e["path"]: e for e in res["entries"]}


@pytest.fixture
def http_only(monkeypatch):
    monkeypatch.setenv("SKIFF_VOLUME_LOCAL", "0")
    run_sync(_client.reset_client())


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url + "/v1", headers={"Authorization": f"Bearer {server.token()}"},
                      timeout=30) as c:
        yield c


def test_a_large_file_is_blocks_and_an_unchanged_block_is_never_sent_again(client_env, http_only, tmp_path,
                                                                           monkeypatch):
    data = os.urandom(2 * BLOCK + 1000)
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    c = client()
    sent: list[str] = []
    put_body = c.put_body
    monkeypatch.setattr(c, "put_body", lambda path, body: (sent.append(path), put_body(path, body))[1])
    vol = skiff.Volume.from_name("test-block-dedup", create_if_missing=True)

    with vol.batch_upload(force=True) as batch:
        batch.put_file(f, "/big.bin")
    first = raw_entries("test-block-dedup")["big.bin"]
    assert first["blocks"] == [sha(data[:BLOCK]), sha(data[BLOCK:2 * BLOCK]), sha(data[2 * BLOCK:])]
    assert len(sent) == 3

    changed = data[:-10] + b"0123456789"
    f.write_bytes(changed)
    sent.clear()
    with vol.batch_upload(force=True) as batch:
        batch.put_file(f, "/big.bin")
    second = raw_entries("test-block-dedup")["big.bin"]
    assert second["blocks"][:2] == first["blocks"][:2] and second["blocks"][2] != first["blocks"][2]
    assert sent == [f"/volume-blobs/{second['blocks'][2]}"]  # only the changed block travelled
    assert b"".join(vol.read_file("big.bin")) == changed

    sent.clear()
    with vol.batch_upload(force=True) as batch:
        batch.put_file(f, "/again.bin")
    assert sent == []


def _tree(root: Path) -> dict[str, bytes]:
    root.mkdir(parents=True, exist_ok=True)
    files = {"big.bin": os.urandom(2 * BLOCK + 4321), "exact.bin": os.urandom(BLOCK), "empty.txt": b"",
             "mid/half.bin": os.urandom(3 << 20)}
    files.update({f"small/{i:03d}.txt": os.urandom(i * 37) for i in range(120)})
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


@pytest.mark.parametrize("local", ["1", "0"], ids=["local-channel", "http"])
def test_cli_put_and_get_round_trip_blocks_and_many_small_files(client_env, tmp_path, local):
    files = _tree(tmp_path / "src")
    env = dict(client_env.env, SKIFF_VOLUME_LOCAL=local)
    name = f"test-roundtrip-{local}"
    for args in (("volume", "create", name), ("volume", "put", name, str(tmp_path / "src"), "/t", "--force"),
                 ("volume", "get", name, "/t", str(tmp_path / "out"), "--force")):
        res = skiff_cli(*args, env=env)
        assert res.returncode == 0, res.stderr
    got = {p.relative_to(tmp_path / "out").as_posix(): p.read_bytes()
           for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert got == files
    res = subprocess.run([sys.executable, "-m", "skiff.cli", "volume", "get", name, "/t/big.bin", "-"],
                         env=env, capture_output=True, timeout=60)  # streamed to stdout, blocks in order
    assert res.returncode == 0, res.stderr
    assert res.stdout == files["big.bin"]


def test_the_local_channel_is_used_here_and_http_when_turned_off(client_env, tmp_path, monkeypatch):
    data = os.urandom(BLOCK + 99)
    (tmp_path / "f.bin").write_bytes(data)
    channel = run_sync(LocalChannel.for_client(client()))
    assert channel is not None
    entry = channel.store_file(tmp_path / "f.bin")
    assert entry["blocks"] == [sha(data[:BLOCK]), sha(data[BLOCK:])] and entry["size"] == len(data)

    monkeypatch.setenv("SKIFF_VOLUME_LOCAL", "0")
    run_sync(_client.reset_client())
    c = client()
    assert run_sync(LocalChannel.for_client(c)) is None
    run_sync(download_files(c, [(entry, tmp_path / "back.bin")]))
    assert (tmp_path / "back.bin").read_bytes() == data


def test_an_unreachable_local_socket_falls_back_to_http(fresh_server, tmp_path):
    path = Path(run_sync(client().request("GET", "/volume-blobs/local"))["socket"])
    path.unlink()  # as if the client ran on another machine, or in a container
    run_sync(_client.reset_client())
    assert run_sync(LocalChannel.for_client(client())) is None
    files = _tree(tmp_path / "src")
    vol = skiff.Volume.from_name("fallback", create_if_missing=True)
    with vol.batch_upload() as batch:
        batch.put_directory(tmp_path / "src", "/")
    res = skiff_cli("volume", "get", "fallback", "/", str(tmp_path / "out"), env=fresh_server.env)
    assert res.returncode == 0, res.stderr
    assert {p.relative_to(tmp_path / "out").as_posix(): p.read_bytes()
            for p in (tmp_path / "out").rglob("*") if p.is_file()} == files


def test_the_local_channel_refuses_a_wrong_token_and_anything_but_a_regular_file(client_env, tmp_path):
    path = run_sync(client().request("GET", "/volume-blobs/local"))["socket"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.connect(path)
        channel = LocalChannel(sock, "not-the-token")
        with pytest.raises(InvalidError, match="wrong API token"):
            channel._call({"op": "hello"})
        channel.token = client_env.token()
        r, w = os.pipe()
        try:
            with pytest.raises(InvalidError, match="only a regular file"):
                send_message(sock, {"op": "store", "token": channel.token}, [r])
                channel._reply()
        finally:
            os.close(r)
            os.close(w)
        with pytest.raises(InvalidError, match="unknown local volume operation 'nope'"):
            channel._call({"op": "nope"})


def test_batches_move_many_small_files_in_few_requests(client_env, http_only, tmp_path, monkeypatch):
    files = {f"d{i % 7}/f{i:04d}.bin": os.urandom(500 + i) for i in range(600)}
    for rel, data in files.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_bytes(data)
    c = client()
    calls: list[tuple[str, str]] = []
    request = c.request

    async def counting(method, path, **kwargs):
        calls.append((method, path))
        return await request(method, path, **kwargs)

    monkeypatch.setattr(c, "request", counting)
    vol = skiff.Volume.from_name("test-batches", create_if_missing=True)
    with vol.batch_upload(force=True) as batch:
        batch.put_directory(tmp_path / "src", "/")
    assert len(calls) <= 4, calls  # ls, missing, one upload batch, commit
    assert ("POST", "/volume-blobs/upload") in calls

    entries = raw_entries("test-batches")
    calls.clear()
    out = tmp_path / "out"
    out.mkdir()
    run_sync(download_files(c, [(entries[rel], out / rel.replace("/", "_")) for rel in files]))
    assert calls == [("POST", "/volume-blobs/download")]
    assert all((out / rel.replace("/", "_")).read_bytes() == data for rel, data in files.items())


def test_content_that_does_not_match_its_id_is_refused(api, client_env):
    promised, sent = b"what was promised", b"something else"
    resp = api.put(f"/volume-blobs/{sha(promised)}", content=sent)
    assert resp.status_code == 400 and "send it again" in resp.json()["message"]
    assert sha(sent) in resp.json()["message"]
    good = b"good blob " + uuid.uuid4().bytes
    body = pack_blobs({"blobs": [[sha(good), len(good)], [sha(promised), len(sent)]]}, [good, sent])
    resp = api.post("/volume-blobs/upload", content=body)
    assert resp.status_code == 400 and resp.json()["code"] == "invalid"
    assert api.post("/volume-blobs/missing", json={"blob_ids": [sha(promised)]}).json()["blob_ids"] == [sha(promised)]
    resp = api.post("/volume-blobs/upload", content=b"\x00\x00\x00\x05{not json")
    assert resp.status_code == 400 and "4-byte length" in resp.json()["message"]


def test_a_commit_whose_blocks_do_not_add_up_is_refused(api, client_env):
    skiff.Volume.from_name("test-bad-commit", create_if_missing=True).listdir("/")
    a, b = b"a" * 10, b"b" * 10
    for data in (a, b):
        assert api.put(f"/volume-blobs/{sha(data)}", content=data).status_code == 200
    resp = api.post("/volumes/test-bad-commit/commit",
                    json={"changes": {"x.bin": {"blocks": [sha(a), sha(b)], "size": 20}}})
    assert resp.status_code == 400
    assert f"is 1 block(s) of {BLOCK} bytes" in resp.json()["message"] and "x.bin" in resp.json()["message"]
    resp = api.post("/volumes/test-bad-commit/commit", json={"changes": {"w.bin": {"blocks": [sha(a)], "size": 11}}})
    assert resp.status_code == 400 and "its blocks hold [10] bytes" in resp.json()["message"]
    full = b"\0" * BLOCK  # two full blocks can't make a file of three and a bit
    assert api.put(f"/volume-blobs/{sha(full)}", content=full).status_code == 200
    resp = api.post("/volumes/test-bad-commit/commit",
                    json={"changes": {"v.bin": {"blocks": [sha(full), sha(full)], "size": 3 * BLOCK + 1}}})
    assert resp.status_code == 400 and "is 4 block(s)" in resp.json()["message"]
    missing = sha(uuid.uuid4().bytes)
    resp = api.post("/volumes/test-bad-commit/commit", json={"changes": {"y.bin": {"blocks": [missing], "size": 1}}})
    assert resp.status_code == 400 and "was not uploaded" in resp.json()["message"]
    resp = api.post("/volumes/test-bad-commit/commit", json={"changes": {"z.bin": {"size": 1}}})
    assert resp.status_code == 400 and '"blocks"' in resp.json()["message"]


def test_entries_stored_before_blocks_still_read(client_env, tmp_path):
    """A version written by an earlier server names one blob per file (``sha256``), of any size."""
    from skiff.server.store import Store
    from skiff.server.store.models import VolumeRow, VolumeVersionRow

    data = os.urandom(BLOCK + (1 << 20))
    with httpx.Client(base_url=client_env.url + "/v1", headers={"Authorization": f"Bearer {client_env.token()}"},
                      timeout=60) as api:
        assert api.put(f"/volume-blobs/{sha(data)}", content=data).status_code == 200
    skiff.Volume.from_name("test-legacy", create_if_missing=True).listdir("/")
    url = client_env.env.get("SKIFF_DATABASE_URL") or f"sqlite:///{client_env.home / 'skiff.db'}"
    store = Store(url)
    try:
        with store.session() as s, s.begin():
            row = s.get(VolumeRow, "test-legacy", with_for_update=True)
            row.version += 1
            s.add(VolumeVersionRow(volume_name="test-legacy", version=row.version, created_at=0.0,
                                   manifest={"old.bin": {"sha256": sha(data), "size": len(data), "mode": 0o600}}))
    finally:
        store.engine.dispose()
    vol = skiff.Volume.from_name("test-legacy")
    assert b"".join(vol.read_file("old.bin")) == data
    for local in ("1", "0"):
        out = tmp_path / f"old-{local}.bin"
        res = skiff_cli("volume", "get", "test-legacy", "/old.bin", str(out), env=dict(client_env.env,
                                                                                     SKIFF_VOLUME_LOCAL=local))
        assert res.returncode == 0, res.stderr
        assert out.read_bytes() == data
    vol.copy_files(["/old.bin"], "/copy.bin")  # a commit on top keeps it, in the new form
    assert raw_entries("test-legacy")["copy.bin"]["blocks"] == [sha(data)]


def test_containers_mount_reload_and_commit_files_of_several_blocks(client_env, tmp_path):
    prefix = f"run-{uuid.uuid4().hex[:8]}"
    vol = volume_blocks_app.blocks
    files = {f"{prefix}/big.bin": os.urandom(2 * BLOCK + 17)}
    files.update({f"{prefix}/many/{i:04d}.txt": os.urandom(64 + i) for i in range(400)})
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    expected = {rel: sha(data) for rel, data in files.items()}
    with volume_blocks_app.app.run(show_logs=False):
        before = volume_blocks_app.digests.remote(False)  # a kept container, on the version before
        assert not any(k.startswith(prefix) for k in before)
        with vol.batch_upload() as batch:
            batch.put_directory(tmp_path / prefix, f"/{prefix}")
        reloaded = volume_blocks_app.digests.remote(True)
        assert {k: v for k, v in reloaded.items() if k.startswith(prefix)} == expected
        cold = volume_blocks_app.cold_digests.remote()  # a new container: the tree assembles big.bin
        assert {k: v for k, v in cold.items() if k.startswith(prefix)} == expected
        written = volume_blocks_app.write_and_commit.remote(f"{prefix}/from-container.bin", 2 * BLOCK + 5, 7)
    entry = raw_entries(vol.name, prefix)[f"{prefix}/from-container.bin"]
    assert len(entry["blocks"]) == 3 and entry["size"] == 2 * BLOCK + 5
    assert sha(b"".join(vol.read_file(f"{prefix}/from-container.bin"))) == written


def test_deleting_a_volume_frees_its_blocks_and_assembled_files(fresh_server, tmp_path):
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(BLOCK + 5))
    vol = skiff.Volume.from_name("blocks-to-delete", create_if_missing=True)
    with vol.batch_upload() as batch:
        batch.put_file(f, "/big.bin")
    root = fresh_server.home / "volume-blobs"
    blobs = [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"]
    assert len(blobs) == 2
    for blob in blobs:  # stored long enough ago for garbage collection to take them
        os.utime(blob, (time.time() - 7200, time.time() - 7200))
    res = skiff_cli("volume", "delete", "blocks-to-delete", "--yes", env=fresh_server.env)
    assert res.returncode == 0, res.stderr
    assert [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"] == []
    assert list((fresh_server.home / "volume-trees" / ".files").iterdir()) == []

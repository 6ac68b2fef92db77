"""Functions for the storage tests: volumes, secrets, dicts and queues from containers."""

import os
from pathlib import Path

import skiff

app = skiff.App("storage-tests")

ckpt = skiff.Volume.from_name("test-checkpoints", create_if_missing=True)
api_key = skiff.Secret.from_name("test-api-key", required_keys=["API_KEY"])
inline = skiff.Secret.from_local_environ(["INLINE_TOKEN"])  # the test sets it before importing this


@app.function(volumes={"/ckpt": ckpt})
def write_checkpoint(name: str, content: str) -> None:
    Path("/ckpt", name).write_text(content)
    ckpt.commit()


@app.function(volumes={"/ckpt": ckpt}, scaledown_window=60)
def read_checkpoint(name: str, reload: bool) -> str | None:
    if reload:
        ckpt.reload()
    path = Path("/ckpt", name)
    return path.read_text() if path.exists() else None


@app.function(volumes={"/ckpt": ckpt})
def write_without_commit(name: str, content: str) -> None:
    """Its container commits when it stops normally."""
    Path("/ckpt", name).write_text(content)


@app.function(secrets=[api_key, inline])
def with_secret() -> dict:
    return {"API_KEY": os.environ.get("API_KEY"), "INLINE_TOKEN": os.environ.get("INLINE_TOKEN")}


@app.function()
def without_secret() -> dict:
    return {"API_KEY": os.environ.get("API_KEY"), "INLINE_TOKEN": os.environ.get("INLINE_TOKEN")}


@app.function()
def dict_and_queue(tag: str) -> int:
    d = skiff.Dict.from_name("test-dict", create_if_missing=True)
    d[tag] = {"from": "container"}
    q = skiff.Queue.from_name("test-queue", create_if_missing=True)
    q.put(tag)
    return len(d)

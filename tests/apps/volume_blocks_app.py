"""Functions for the volume transfer tests: a container reading and reloading files made
of several blocks, and many small files."""

import hashlib
import os
from pathlib import Path

import skiff

app = skiff.App("volume-blocks-tests")

blocks = skiff.Volume.from_name("test-volume-blocks", create_if_missing=True)


def _digests(root: str) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@app.function(volumes={"/data": blocks}, scaledown_window=60)
def digests(reload: bool) -> dict[str, str]:
    """sha256 of every file the container sees, after a reload if asked."""
    if reload:
        blocks.reload()
    return _digests("/data")


@app.function(volumes={"/data": blocks})
def write_and_commit(name: str, size: int, seed: int) -> str:
    """Write a file of ``size`` pseudo-random bytes, commit, and return its sha256."""
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    Path("/data", name).write_bytes(data[:size])
    blocks.commit()
    return hashlib.sha256(data[:size]).hexdigest()


@app.function(volumes={"/data": blocks}, max_inputs=1)
def cold_digests() -> dict[str, str]:
    """The same from a new container, which mounts the newest version's tree."""
    return _digests("/data")

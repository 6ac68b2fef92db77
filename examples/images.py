"""Functions in a custom image: `skiff run examples/images.py`.

The first run builds the image (Debian base, jq, numpy) and shows each step live; a
second run with nothing changed starts at once.
"""

import json
import os
import subprocess

import skiff

app = skiff.App("images")

image = (
    skiff.Image.debian_slim(python_version="3.11")
    .apt_install("jq")
    .pip_install("numpy", "six==1.16.0")
    .env({"HF_HOME": "/cache"})
    .add_local_python_source("mylib")
)

with image.imports():
    import numpy as np


@app.function(image=image, memory=512, cpu=1.0, timeout=600)
def work(x: int) -> dict:
    import mylib

    jq = subprocess.run(["jq", "-c", ".a"], input=json.dumps({"a": [x, x]}), capture_output=True, text=True)
    return {
        "jq": jq.stdout.strip(),
        "numpy": int(np.arange(x + 1).sum()),
        "HF_HOME": os.environ.get("HF_HOME"),
        "mylib": mylib.greet("skiff"),
        "sees_host_home": os.path.exists(os.path.expanduser("~/.skiff")),
    }


@app.function(image=image, memory=256)
def hog(mib: int) -> int:
    """Allocates (and touches) ``mib`` MiB; past the 256 MiB limit the container is stopped."""
    blocks = [bytearray(1024 * 1024) for _ in range(mib)]
    return len(blocks)


@app.local_entrypoint()
def main(x: int = 4):
    print(json.dumps(work.remote(x), sort_keys=True))
    try:
        hog.remote(1024)
    except skiff.exception.ExecutionError as exc:
        print(exc)

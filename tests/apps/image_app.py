"""Functions the image tests run in containers (this module must import without pytest)."""

import os

import skiff

app = skiff.App("image-tests")


@app.function()
def peek(path: str) -> bool:
    return os.path.exists(path)

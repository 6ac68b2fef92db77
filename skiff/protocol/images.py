"""Images as the sides speak of them: build steps by kind, and the ids of their layers.

An image is a list of steps (JSON objects with a ``kind``), the first a base. The SDK's
``skiff.Image`` makes them; a node's builder (``skiff.worker.images``) builds one layer
per step. A layer's id hashes its parent's id and its step, so the SDK, the server and
every node agree on which layers an image needs without building anything.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

Step = dict[str, Any]  # {"kind": ..., and the kind's fields}

# Each base step kind's Python comes from Debian's own packages, so a build needs only a
# Debian mirror: each version, with the Debian release that ships it.
DEBIAN_PYTHONS = {"3.11": ("bookworm", 12), "3.13": ("trixie", 13)}
DEFAULT_PYTHON = "3.11"

STEP_KINDS = ("debian_slim", "apt", "pip", "pip_requirements", "run", "run_function", "env", "workdir", "copy")
BASE_KINDS = ("debian_slim",)

# Part of every layer id: bump it when what a step produces changes, so cached layers
# built the old way are rebuilt. 2: pip layers carry compiled bytecode.
BUILDER_VERSION = 2


def debian_base(python: str = DEFAULT_PYTHON) -> Step:
    """The base step of a ``debian_slim`` image with Python ``python`` (one of DEBIAN_PYTHONS)."""
    suite, _release = DEBIAN_PYTHONS[python]
    return {"kind": "debian_slim", "suite": suite, "python": python}


def default_image() -> list[Step]:
    """What a function without ``image=`` runs in: Debian 12 with its Python."""
    return [debian_base()]


def layer_ids(steps: list[Step]) -> list[str]:
    ids, parent = [], f"builder-{BUILDER_VERSION}"
    for step in steps:
        body = json.dumps({k: v for k, v in step.items() if k != "force"}, sort_keys=True)
        parent = hashlib.sha256(f"{parent}\n{body}".encode()).hexdigest()[:32]
        ids.append(parent)
    return ids


def describe(step: Step) -> str:
    """One line naming a step, as build progress shows it."""
    kind = step["kind"]
    if kind == "debian_slim":
        return f"debian_slim (Debian {step['suite']}, Python {step['python']})"
    if kind == "apt":
        return "apt_install " + " ".join(step["packages"])
    if kind == "pip":
        return "pip_install " + " ".join(step["packages"])
    if kind == "pip_requirements":
        return "pip_install_from_requirements"
    if kind == "run":
        return "run_commands " + "; ".join(step["commands"])
    if kind == "run_function":
        return f"run_function {step['name']}"
    if kind == "env":
        return "env " + " ".join(f"{k}={v}" for k, v in step["vars"].items())
    if kind == "workdir":
        return f"workdir {step['path']}"
    if kind == "copy":
        return f"copy {len(step['files'])} file(s) to {step['remote_path']}"
    return str(kind)

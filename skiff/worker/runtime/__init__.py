"""Container runtimes. Only this package starts, signals or waits on containers."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .base import BuiltImage, Capabilities, ContainerHandle, ContainerRequest, ContainerRuntime
from .process import ProcessRuntime

__all__ = [
    "BuiltImage",
    "Capabilities",
    "ContainerHandle",
    "ContainerRequest",
    "ContainerRuntime",
    "ProcessRuntime",
    "select_runtime",
]

log = logging.getLogger("skiff.runtime")


def select_runtime(name: str | None, state_dir: Path, api_socket: Path) -> tuple[ContainerRuntime, list[str]]:
    """The runtime to use, and notes for the user about what was chosen or fixed.

    ``oci`` wherever it can run (Linux, root, crun or runc); otherwise ``process`` with a
    one-line warning. ``SKIFF_RUNTIME=process|oci`` forces a choice.
    """
    from ...protocol.errors import InvalidError

    wanted = (name or "").lower() or None
    if wanted not in (None, "oci", "process"):
        raise InvalidError(f"SKIFF_RUNTIME={name!r} is not a runtime skiff has; use 'oci' or 'process'")
    if wanted == "process":
        return ProcessRuntime(), []
    from .host import HostNotReady, probe
    from .oci import OciRuntime

    try:
        host = probe(os.environ.get("SKIFF_OCI_BINARY"))
    except HostNotReady as exc:
        if wanted == "oci":
            raise InvalidError(f"SKIFF_RUNTIME=oci, but {exc}") from None
        return ProcessRuntime(), [f"warning: using the process runtime (no isolation, no images): {exc}"]
    return OciRuntime(host, state_dir, api_socket), [f"runtime oci ({host.name})", *host.notes]

"""Container runtimes. Only this package starts, signals or waits on containers."""

from .base import Capabilities, ContainerHandle, ContainerRequest, ContainerRuntime
from .process import ProcessRuntime

__all__ = [
    "Capabilities",
    "ContainerHandle",
    "ContainerRequest",
    "ContainerRuntime",
    "ProcessRuntime",
    "select_runtime",
]


def select_runtime(name: str | None) -> ContainerRuntime:
    """The runtime named by ``SKIFF_RUNTIME`` (``process`` until images land)."""
    from ...exception import InvalidError

    name = (name or "process").lower()
    if name == "process":
        return ProcessRuntime()
    raise InvalidError(f"SKIFF_RUNTIME={name!r} is not a runtime skiff has; use 'process'")

"""What the SDK's decorators leave on a user's class for the container to read.

``@skiff.enter()``, ``@skiff.exit()``, ``@skiff.method()`` and the rest run in the
user's process and mark the function with a dict under ``MARK``; ``skiff.parameter()``
leaves a :class:`Parameter` as the class attribute's value. The container imports the
same class in another process and reads the marks back here, so the two sides share
the attribute names and the way an instance is made.
"""

from __future__ import annotations

import inspect
from typing import Any

MARK = "__skiff__"  # attribute holding a dict of what the decorators said


def marks(f: Any) -> dict[str, Any]:
    found = getattr(f, MARK, {})
    return found if isinstance(found, dict) else {}


class Parameter:
    """A class attribute declared with ``skiff.parameter()``; ``default`` may be missing."""

    def __init__(self, default: Any) -> None:
        self.default = default


def class_parameters(user_cls: type) -> dict[str, Parameter]:
    found: dict[str, Parameter] = {}
    for klass in reversed(user_cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Parameter):
                found[name] = value
    return found


def instantiate(user_cls: type, params: dict[str, Any]) -> Any:
    """Make an instance the way a container does: parameters set as attributes."""
    instance: Any = object.__new__(user_cls)
    for name, p in class_parameters(user_cls).items():
        setattr(instance, name, params.get(name, p.default))
    if not class_parameters(user_cls) and user_cls.__init__ is not object.__init__:  # type: ignore[misc]  # comparing, not assigning
        instance.__init__()
    return instance


def lifecycle_methods(user_cls: type, kind: str) -> list[str]:
    """The names of the methods marked ``kind`` ("enter", "exit", "method")."""
    return [name for name, value in inspect.getmembers(user_cls) if callable(value) and marks(value).get(kind)]

"""The rules for names of server objects: apps, volumes, dicts, queues and secrets.

The SDK checks a name when a handle is made, and the server checks it again, since a
request may come from any client.
"""

from __future__ import annotations

import re

from .errors import InvalidError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(kind: str, name: object) -> str:
    """``name`` if it is a valid name for a ``kind``; else an error that says what is."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidError(
            f"{kind} name {name!r} is not valid: use up to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name

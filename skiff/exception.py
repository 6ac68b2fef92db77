"""skiff's exceptions: one hierarchy, shared by the SDK, the server and the wire.

Every error the server returns carries a ``code``; the client maps it back onto the
class with the same ``code``, so ``except skiff.exception.NotFoundError`` works for
errors raised on the other side of an HTTP request. The classes live in
:mod:`skiff.protocol.errors`, which every side imports; this is their public name.
"""

from __future__ import annotations

from .protocol.errors import *  # noqa: F403
from .protocol.errors import __all__, error_from_code  # noqa: F401

"""skiff's exceptions: one hierarchy, shared by the SDK, the server and the wire.

Every error the server returns carries a ``code``; the client maps it back onto the
class below with the same ``code``, so ``except skiff.exception.NotFoundError`` works
for errors raised on the other side of an HTTP request. :mod:`skiff.exception` is the
public name of this module.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConflictError",
    "ConnectionError",
    "DeprecationError",
    "Error",
    "ExecutionError",
    "FunctionTimeoutError",
    "ImageBuildError",
    "InputCancellation",
    "InvalidError",
    "NotFoundError",
    "NotSupportedError",
    "OutputExpiredError",
    "PermissionDeniedError",
    "RemoteError",
    "SerializationError",
    "TimeoutError",
]


class Error(Exception):
    """Base class for every skiff error."""

    code = "internal"
    http_status = 500


class InvalidError(Error):
    """A value given to skiff is not valid: the message names it and says why."""

    code = "invalid"
    http_status = 400


class NotSupportedError(InvalidError):
    """The argument is valid, but the capability it asks for does not exist yet."""

    code = "not_supported"
    http_status = 400


class SerializationError(InvalidError):
    """An argument or result could not be pickled or unpickled."""

    code = "serialization"
    http_status = 400


class ConflictError(InvalidError):
    """The request clashes with the object's current state (Modal's name)."""

    code = "conflict"
    http_status = 409


class NotFoundError(Error):
    """A named object (app, function, call, blob...) does not exist."""

    code = "not_found"
    http_status = 404


class AuthError(Error):
    """The request carried no token, or the wrong one."""

    code = "unauthenticated"
    http_status = 401


class PermissionDeniedError(Error):
    """The token is valid, but may not do this: a container's token reaches only its
    own function's work."""

    code = "permission_denied"
    http_status = 403


class ConnectionError(Error):  # noqa: A001 - Modal's name
    """The skiff server could not be reached."""

    code = "unavailable"
    http_status = 503


class TimeoutError(Error):  # noqa: A001 - Modal's name
    """Waiting for a result took longer than the caller allowed."""

    code = "timeout"
    http_status = 408


class FunctionTimeoutError(TimeoutError):
    """A function ran past its ``timeout=`` and its container was stopped."""

    code = "function_timeout"


class OutputExpiredError(TimeoutError):
    """The call's output is no longer held by the server."""

    code = "output_expired"
    http_status = 410


class ExecutionError(Error):
    """The function could not run: its container died, or its module failed to import."""

    code = "execution"


class ImageBuildError(Error):
    """An image step failed; the message shows the command, its exit code and its log."""

    code = "image_build"
    http_status = 422


class RemoteError(Error):
    """A remote exception whose own type could not be brought back to this process."""

    code = "remote"


class InputCancellation(Error):
    """The input was cancelled before it produced an output."""

    code = "cancelled"
    http_status = 409


class DeprecationError(Error):
    code = "deprecated"
    http_status = 400


def _all_error_classes() -> list[type[Error]]:
    seen: list[type[Error]] = []
    stack: list[type[Error]] = [Error]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


def error_from_code(code: str, message: str) -> Error:
    """Rebuild the exception a server error response describes."""
    for cls in _all_error_classes():
        if cls.code == code:
            return cls(message)
    return Error(message)

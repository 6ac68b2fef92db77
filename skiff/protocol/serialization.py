"""Pickling of arguments, results and exceptions. Standard library and cloudpickle only:
the in-container runtime uses this module too."""

from __future__ import annotations

import base64
import hashlib
import pickle
import traceback
from typing import Any

import cloudpickle

from .errors import ExecutionError, RemoteError, SerializationError


def serialize(obj: Any) -> bytes:
    data: bytes = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return data


def deserialize(data: bytes) -> Any:
    return pickle.loads(data)


def serialize_args(fn_name: str, args: tuple[Any, ...], kwargs: dict[str, Any], method: str | None = None) -> bytes:
    """Pickle a call's arguments, naming the one that cannot be pickled. A method call on
    an ``@app.cls`` instance carries the method's name too."""
    try:
        return serialize((args, kwargs) if method is None else (args, kwargs, method))
    except Exception as whole_exc:
        for i, value in enumerate(args):
            _check_picklable(fn_name, f"argument {i}", value)
        for key, value in kwargs.items():
            _check_picklable(fn_name, f"argument {key!r}", value)
        raise SerializationError(f"the arguments to {fn_name}() cannot be pickled: {whole_exc}") from whole_exc


def _check_picklable(fn_name: str, what: str, value: Any) -> None:
    try:
        serialize(value)
    except Exception as exc:
        raise SerializationError(
            f"{what} to {fn_name}() cannot be pickled ({type(value).__name__}): {exc}. "
            "Pass plain data (numbers, strings, lists, dicts, dataclasses) or an object "
            "that cloudpickle can serialize."
        ) from exc


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """What a container sends back for a raised exception: the pickled exception when it
    pickles (and unpickles), and always its type, message and formatted traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    pickled: bytes | None
    try:
        pickled = serialize(exc)
        pickle.loads(pickled)  # some exceptions pickle but cannot be rebuilt
    except Exception:
        pickled = None
    return {
        "pickled": pickled,
        "exc_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "exc_message": str(exc),
        "traceback": tb,
    }


class RemoteTraceback(Exception):
    """Carries the remote traceback text as the ``__cause__`` of a re-raised exception,
    so Python prints it above the local one."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return "\n\nRemote traceback:\n" + self.tb.rstrip()


def rebuild_exception(
    pickled: bytes | None, exc_type: str | None, message: str | None, tb: str | None
) -> BaseException:
    """The exception to raise locally for a remote failure, with its traceback attached."""
    exc: BaseException | None = None
    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(f"{exc_type}: {message}")
    if tb:
        exc.__cause__ = RemoteTraceback(tb)
    return exc


__all__ = [
    "ExecutionError",
    "RemoteTraceback",
    "b64",
    "describe_exception",
    "deserialize",
    "rebuild_exception",
    "serialize",
    "serialize_args",
    "sha256",
    "unb64",
]

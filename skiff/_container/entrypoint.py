"""The container's main loop: import the function, then exchange outputs for inputs
until the server says stop."""

from __future__ import annotations

import importlib
import inspect
import os
import signal
import sys
import threading
from typing import Any

from .. import _serialization as ser
from .._wire import INLINE_PAYLOAD_LIMIT
from ..exception import InputCancellation
from .client import ContainerClient, ServerGone


class _Cancellation:
    """Lets the signals thread interrupt the input running on the main thread."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.cancelled: set[str] = set()
        signal.signal(signal.SIGUSR1, self._handler)

    def _handler(self, _signum: int, _frame: Any) -> None:
        if self.current is not None and self.current in self.cancelled:
            raise InputCancellation("the call was cancelled")

    def cancel(self, input_ids: list[str]) -> None:
        self.cancelled.update(input_ids)
        if self.current in self.cancelled:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # type: ignore[arg-type]


class Container:
    def __init__(self) -> None:
        env = os.environ
        self.function_id = env["SKIFF_FUNCTION_ID"]
        self.container_id = env["SKIFF_CONTAINER_ID"]
        self.client = ContainerClient(env["SKIFF_SERVER_URL"], env["SKIFF_TOKEN"], self.function_id, self.container_id)
        self.cancellation = _Cancellation()
        self.spec: dict = {}

    # -- payloads ------------------------------------------------------------------------

    def _load(self, payload: dict) -> Any:
        if payload.get("blob_id"):
            data = self.client.request("GET", f"/v1/blobs/{payload['blob_id']}", absolute=True)
        else:
            data = ser.unb64(payload["data"])
        return ser.deserialize(data)

    def _dump(self, value: Any) -> dict:
        data = ser.serialize(value)
        if len(data) > INLINE_PAYLOAD_LIMIT:
            blob_id = ser.sha256(data)
            self.client.request("PUT", f"/v1/blobs/{blob_id}", raw=data, absolute=True)
            return {"blob_id": blob_id, "data": None}
        return {"data": ser.b64(data), "blob_id": None}

    def _failure(self, input_id: str, exc: BaseException, status: str = "failure") -> dict:
        info = ser.describe_exception(exc)
        return {
            "input_id": input_id,
            "status": status,
            "result": {"data": ser.b64(info["pickled"]), "blob_id": None} if info["pickled"] else None,
            "exc_type": info["exc_type"],
            "exc_message": info["exc_message"],
            "traceback": info["traceback"],
        }

    # -- start-up -----------------------------------------------------------------------

    def load_function(self) -> Any:
        spec = self.spec
        if spec.get("pickled"):
            fn = self._load(spec["pickled"])
        else:
            module = importlib.import_module(spec["module_name"])
            fn = module
            for part in spec["qualname"].split("."):
                fn = getattr(fn, part)
        raw = getattr(fn, "get_raw_f", None)
        return raw() if raw is not None else fn

    def _watch_signals(self) -> None:
        while True:
            try:
                sig = self.client_signals.request("GET", "/signals?timeout=20")
            except (ServerGone, RuntimeError):
                return
            if sig.get("cancel"):
                self.cancellation.cancel(sig["cancel"])
            if sig.get("stop"):
                return

    # -- the loop ------------------------------------------------------------------------

    def run_input(self, fn: Any, inp: dict) -> list[dict]:
        input_id = inp["input_id"]
        self.cancellation.current = input_id
        try:
            args, kwargs = self._load(inp["args"])
            if self.spec.get("is_generator"):
                return self._run_generator(fn, input_id, args, kwargs)
            result = fn(*args, **kwargs)
            if inspect.iscoroutine(result):
                import asyncio

                result = asyncio.run(result)
            self.cancellation.current = None
            return [{"input_id": input_id, "status": "success", "result": self._dump(result)}]
        except InputCancellation as exc:
            return [self._failure(input_id, exc, status="cancelled")]
        except BaseException as exc:  # noqa: BLE001 - the user's exception goes back to the caller
            return [self._failure(input_id, exc)]
        finally:
            self.cancellation.current = None

    def _run_generator(self, fn: Any, input_id: str, args: tuple, kwargs: dict) -> list[dict]:
        index = 0
        for item in fn(*args, **kwargs):
            out = {"input_id": input_id, "status": "success", "result": self._dump(item), "gen_index": index}
            self.client.request("POST", "/exchange", {"outputs": [out], "want": 0, "timeout": 0})
            index += 1
        return [{"input_id": input_id, "status": "success", "result": None, "gen_done": True, "gen_index": index}]

    def serve(self) -> int:
        self.spec = self.client.request("GET", "/hello")["spec"]
        try:
            fn = self.load_function()
        except BaseException as exc:  # noqa: BLE001
            print(f"skiff: could not load {self.spec.get('name')}: {type(exc).__name__}: {exc}", file=sys.stderr)
            self.client.request("POST", "/init_failure", self._failure("", exc, status="init_failure"))
            return 1
        self.client_signals = ContainerClient(
            os.environ["SKIFF_SERVER_URL"], os.environ["SKIFF_TOKEN"], self.function_id, self.container_id
        )
        threading.Thread(target=self._watch_signals, name="skiff-signals", daemon=True).start()

        max_inputs = self.spec.get("max_inputs") or 0
        done = 0
        outputs: list[dict] = []
        while True:
            want = 0 if (max_inputs and done >= max_inputs) else 1
            work = self.client.request("POST", "/exchange", {"outputs": outputs, "want": want, "timeout": 25})
            outputs = []
            if want == 0 or (work["stop"] and not work["inputs"]):
                return 0
            for inp in work["inputs"]:
                outputs.extend(self.run_input(fn, inp))
                done += 1


def main() -> int:
    try:
        return Container().serve()
    except ServerGone as exc:
        print(f"skiff: {exc}; container exiting", file=sys.stderr)
        return 1

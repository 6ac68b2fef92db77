"""``Secret``: values a function gets as environment variables, encrypted at rest.

```python
@app.function(secrets=[skiff.Secret.from_name("openai-api-key", required_keys=["OPENAI_API_KEY"])])
def ask(q):
    key = os.environ["OPENAI_API_KEY"]
```
Create them with ``skiff secret create NAME KEY=VALUE ...``. No API gives the values back;
they reach only the containers of functions that name the secret.
"""

from __future__ import annotations

import os
from pathlib import Path

from .exception import InvalidError
from .protocol.names import check_name

__all__ = ["Secret"]


class Secret:
    def __init__(self, *, name: str | None = None, values: dict[str, str] | None = None,
                 required_keys: list[str] | None = None) -> None:
        self.name = name
        self._values = values  # an inline secret, sent to the server when the app starts
        self.required_keys = list(required_keys or [])

    def __repr__(self) -> str:
        return f"<skiff.Secret {self.name!r}>" if self.name else "<skiff.Secret (inline)>"

    @staticmethod
    def from_name(name: str, *, required_keys: list[str] | None = None) -> Secret:
        """A secret created with ``skiff secret create``; ``required_keys`` are checked
        before any container starts."""
        check_name("secret", name)
        if required_keys is not None and not all(isinstance(k, str) for k in required_keys):
            raise InvalidError(f"required_keys must be a list of strings, got {required_keys!r}")
        return Secret(name=name, required_keys=required_keys)

    @staticmethod
    def from_dict(env_dict: dict[str, str] | dict[str, str | None]) -> Secret:
        """A secret made from a dict here; ``None`` values are left out."""
        if not isinstance(env_dict, dict):
            raise InvalidError(f"Secret.from_dict() takes a dict of str to str, got {type(env_dict).__name__}")
        values = {k: v for k, v in env_dict.items() if v is not None}
        for k, v in values.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise InvalidError(f"Secret.from_dict(): {k!r} -> {v!r} is not str -> str")
        return Secret(values=values)

    @staticmethod
    def from_dotenv(path: str | Path | None = None, *, filename: str = ".env") -> Secret:
        """A secret from a ``.env`` file (``KEY=VALUE`` lines)."""
        if os.environ.get("SKIFF_IS_CONTAINER") == "1":
            return Secret(values={})  # the file was read where the app was started
        file = Path(path) if path is not None else Path.cwd()
        if file.is_dir():
            file = file / filename
        if not file.is_file():
            raise InvalidError(f"Secret.from_dotenv(): no file {file}")
        return Secret.from_dict(parse_dotenv(file.read_text()))

    @staticmethod
    def from_local_environ(env_keys: list[str]) -> Secret:
        """A secret holding these variables from this process's environment."""
        if os.environ.get("SKIFF_IS_CONTAINER") == "1":
            return Secret(values={})  # the values were taken where the app was started
        missing = [k for k in env_keys if k not in os.environ]
        if missing:
            raise InvalidError(f"Secret.from_local_environ(): not set in this environment: {missing}")
        return Secret.from_dict({k: os.environ[k] for k in env_keys})


def parse_dotenv(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InvalidError(f".env line {n} is not KEY=VALUE: {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values

"""``Image``: a container image defined in Python, built into cached layers by the server.

```python
image = (
    skiff.Image.debian_slim(python_version="3.11")
    .apt_install("jq")
    .pip_install("numpy", "six==1.16.0")
    .env({"HF_HOME": "/cache"})
    .add_local_python_source("mylib")
)

@app.function(image=image)
def work(x): ...
```

Each method returns a new ``Image`` with one more step. A step's layer id is a hash of
its parent's id, the step, and the content of any local files it bakes in, so a rebuild
with nothing changed is a lookup. Local files are mounted at container start unless
``copy=True`` bakes them into a layer.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._mount import sha256_file
from .exception import InvalidError
from .protocol import serialization as ser
from .protocol.images import DEBIAN_PYTHONS, DEFAULT_PYTHON, debian_base

__all__ = ["Image"]

_SKIP = ("__pycache__", ".git", ".venv", "*.pyc")


@dataclass(frozen=True)
class LocalMount:
    """Local files mounted read-only into the container at ``remote_path``."""

    remote_path: str
    files: tuple[tuple[str, str, str], ...]  # (path relative to remote_path, local file, sha256)


@dataclass(frozen=True)
class Image:
    """A container image: a base plus build steps, built and cached by the server."""

    steps: tuple[dict[str, Any], ...] = ()
    mounts: tuple[LocalMount, ...] = ()
    force_build: bool = False
    _local_files: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (sha256, path) to upload

    # -- bases ---------------------------------------------------------------------------

    @staticmethod
    def debian_slim(python_version: str | None = None, force_build: bool = False) -> Image:
        """Debian, minimal, with Python from Debian's own packages: Debian 12 (bookworm)
        with Python 3.11 by default, or Debian 13 (trixie) for ``python_version="3.13"``.
        The patch release is Debian's; other versions raise, naming these."""
        version = DEFAULT_PYTHON if python_version is None else python_version
        if not isinstance(version, str) or not version.replace(".", "").isdigit() or version.count(".") not in (1, 2):
            raise InvalidError(f"python_version= must look like '3.11', got {python_version!r}")
        minor = ".".join(version.split(".")[:2])
        if minor not in DEBIAN_PYTHONS:
            offered = ", ".join(f"{v} (Debian {n}, {suite})" for v, (suite, n) in DEBIAN_PYTHONS.items())
            raise InvalidError(
                f"python_version={python_version!r} is not available: debian_slim images get Python from "
                f"Debian's packages, which offer {offered}. Pick one of those."
            )
        return Image(steps=(debian_base(minor),), force_build=force_build)

    # -- build steps ---------------------------------------------------------------------

    def _with(self, step: dict[str, Any], force_build: bool = False, files: Sequence[tuple[str, str]] = ()) -> Image:
        step = dict(step, force=bool(force_build or _env_force()))
        return Image(
            steps=self.steps + (step,), mounts=self.mounts, force_build=self.force_build or force_build,
            _local_files=self._local_files + tuple(files),
        )

    def apt_install(self, *packages: str | list[str], force_build: bool = False) -> Image:
        """Install Debian packages with apt-get."""
        pkgs = _flatten("apt_install", packages)
        return self._with({"kind": "apt", "packages": pkgs}, force_build) if pkgs else self

    def pip_install(
        self,
        *packages: str | list[str],
        index_url: str | None = None,
        extra_index_url: str | None = None,
        pre: bool = False,
        extra_options: str = "",
        force_build: bool = False,
    ) -> Image:
        """Install Python packages (with uv, sharing one download cache across builds)."""
        pkgs = _flatten("pip_install", packages)
        if not pkgs:
            return self
        step = {"kind": "pip", "packages": pkgs, "index_url": index_url, "extra_index_url": extra_index_url,
                "pre": bool(pre), "extra_options": extra_options}
        return self._with(step, force_build)

    uv_pip_install = pip_install

    def pip_install_from_requirements(self, requirements_txt: str | Path, force_build: bool = False, **kwargs: Any) -> Image:
        """Install the packages a requirements.txt lists."""
        path = Path(requirements_txt).expanduser()
        if not path.is_file():
            raise InvalidError(f"pip_install_from_requirements: {path} is not a file")
        step = {"kind": "pip_requirements", "content": path.read_text(), **_pip_kwargs(kwargs)}
        return self._with(step, force_build)

    def run_commands(self, *commands: str | list[str], force_build: bool = False) -> Image:
        """Run shell commands in the image, with network."""
        cmds = _flatten("run_commands", commands)
        return self._with({"kind": "run", "commands": cmds}, force_build) if cmds else self

    def run_function(self, raw_f: Callable[[], Any], *, force_build: bool = False) -> Image:
        """Run a Python function inside the image at build time (e.g. to download a model)."""
        if not callable(raw_f):
            raise InvalidError(f"run_function() takes a function, got {raw_f!r}")
        data = ser.serialize(raw_f)
        return self._with({"kind": "run_function", "name": getattr(raw_f, "__name__", "fn"),
                           "pickled": ser.b64(data), "sha256": ser.sha256(data)}, force_build)

    def env(self, vars: dict[str, str]) -> Image:
        """Set environment variables for later steps and for the function."""
        if not isinstance(vars, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in vars.items()):
            raise InvalidError(f"Image.env() takes a dict of str to str, got {vars!r}")
        return self._with({"kind": "env", "vars": dict(sorted(vars.items()))})

    def workdir(self, path: str | Path) -> Image:
        """Set the working directory for later steps and for the function."""
        if not str(path).startswith("/"):
            raise InvalidError(f"Image.workdir() needs an absolute path, got {str(path)!r}")
        return self._with({"kind": "workdir", "path": str(path)})

    # -- local files -----------------------------------------------------------------------

    def add_local_file(self, local_path: str | Path, remote_path: str, *, copy: bool = False) -> Image:
        """Put one local file at ``remote_path`` in the container."""
        local = Path(local_path).expanduser()
        if not local.is_file():
            raise InvalidError(f"add_local_file: {local} is not a file")
        if not remote_path.startswith("/"):
            raise InvalidError(f"add_local_file: remote_path must be absolute, got {remote_path!r}")
        if remote_path.endswith("/"):
            remote_path += local.name
        parent, name = os.path.split(remote_path)
        return self._add_files(parent, [(name, local)], copy)

    def add_local_dir(self, local_path: str | Path, remote_path: str, *, copy: bool = False,
                      ignore: Sequence[str] | Callable[[Path], bool] = ()) -> Image:
        """Put a local directory's files under ``remote_path``; ``ignore`` takes glob
        patterns or a predicate on each relative path."""
        local = Path(local_path).expanduser()
        if not local.is_dir():
            raise InvalidError(f"add_local_dir: {local} is not a directory")
        if not remote_path.startswith("/"):
            raise InvalidError(f"add_local_dir: remote_path must be absolute, got {remote_path!r}")
        return self._add_files(remote_path, _walk(local, ignore), copy)

    def add_local_python_source(self, *modules: str, copy: bool = False,
                                ignore: Sequence[str] | Callable[[Path], bool] = ()) -> Image:
        """Make local Python modules or packages importable in the container, by name."""
        files: list[tuple[str, Path]] = []
        for name in modules:
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                raise InvalidError(f"add_local_python_source: no module named {name!r} is importable here")
            origin = Path(spec.origin)
            if spec.submodule_search_locations:  # a package: ship its directory
                pkg = Path(next(iter(spec.submodule_search_locations)))
                files += [(f"{name}/{rel}", path) for rel, path in _walk(pkg, tuple(ignore) + _SKIP if not callable(ignore) else ignore)]
            else:
                files.append((origin.name, origin))
        return self._add_files("/root", files, copy)

    def _add_files(self, remote_dir: str, files: Sequence[tuple[str, Path]], copy: bool) -> Image:
        hashed = [(rel, str(path), sha256_file(path)) for rel, path in files]
        uploads = [(sha, path) for _, path, sha in hashed]
        if copy:
            step = {"kind": "copy", "remote_path": remote_dir, "files": {rel: sha for rel, _, sha in hashed}}
            return self._with(step, files=uploads)
        mount = LocalMount(remote_dir, tuple(hashed))
        return Image(steps=self.steps, mounts=self.mounts + (mount,), force_build=self.force_build,
                     _local_files=self._local_files + tuple(uploads))

    # -- using images ------------------------------------------------------------------------

    @contextlib.contextmanager
    def imports(self) -> Iterator[None]:
        """Imports that exist only inside the image: skipped here, done in the container.

        ```python
        with image.imports():
            import numpy as np
        ```
        """
        try:
            yield
        except ImportError:
            if os.environ.get("SKIFF_IS_CONTAINER") == "1":
                raise

    def to_wire(self) -> list[dict[str, Any]]:
        if not self.steps or self.steps[0]["kind"] != "debian_slim":
            raise InvalidError("an Image must start from a base, e.g. skiff.Image.debian_slim()")
        steps = [dict(s) for s in self.steps]
        if self.force_build:
            steps[0]["force"] = True
        return steps



def _env_force() -> bool:
    return os.environ.get("SKIFF_FORCE_BUILD", "") not in ("", "0")


def _flatten(method: str, items: Sequence[str | list[str]]) -> list[str]:
    out: list[str] = []
    for item in items:
        for value in item if isinstance(item, list | tuple) else [item]:
            if not isinstance(value, str) or not value.strip():
                raise InvalidError(f"{method}() takes non-empty strings, got {value!r}")
            out.append(value)
    return out


def _pip_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    allowed = {"index_url", "extra_index_url", "pre", "extra_options"}
    unknown = set(kwargs) - allowed
    if unknown:
        raise InvalidError(f"unknown argument(s) {sorted(unknown)}; pip options are {sorted(allowed)}")
    return {"index_url": kwargs.get("index_url"), "extra_index_url": kwargs.get("extra_index_url"),
            "pre": bool(kwargs.get("pre", False)), "extra_options": kwargs.get("extra_options", "")}


def _walk(root: Path, ignore: Sequence[str] | Callable[[Path], bool]) -> list[tuple[str, Path]]:
    out = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root)
        if callable(ignore):
            if ignore(rel):
                continue
        elif any(rel.match(p) or any(part == p for part in rel.parts) for p in ignore):
            continue
        out.append((str(rel), path))
    return out


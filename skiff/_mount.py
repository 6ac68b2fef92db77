"""Code mounts: the files a container needs to import the user's function.

A function defined in a plain module ships that one file; one defined inside a package
ships the package's top-level directory, so its relative imports work. Files are
uploaded by sha256, and only the ones the server does not have yet.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_SKIP_DIRS = {"__pycache__", ".git", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache"}
_MAX_MOUNT_FILES = 5000


@dataclass
class CodeMount:
    module_name: str
    files: dict[str, Path]  # relative path in the container -> local file

    def manifest(self) -> dict[str, tuple[str, Path]]:
        return {rel: (sha256_file(path), path) for rel, path in self.files.items()}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def module_of(fn: Callable[..., object]) -> tuple[str, Path] | None:
    """The importable name and file of the module defining ``fn``, or None when it has none
    (an interactive session, a notebook cell)."""
    module = sys.modules.get(fn.__module__)
    file = getattr(module, "__file__", None)
    if module is None or file is None:
        return None
    path = Path(file).resolve()
    if fn.__module__ == "__main__":
        spec = getattr(module, "__spec__", None)
        name = spec.name if spec is not None else path.stem  # `python -m pkg.mod` keeps its name
        return name, path
    return fn.__module__, path


def code_mount(module_name: str, path: Path) -> CodeMount:
    top = module_name.split(".")[0]
    if "." not in module_name and path.name != "__init__.py":
        return CodeMount(module_name, {path.name: path})
    # Walk up from the module to its top-level package directory.
    pkg_dir = path.parent
    for _ in range(module_name.count(".") - (0 if path.name == "__init__.py" else 1)):
        pkg_dir = pkg_dir.parent
    if pkg_dir.name != top:
        return CodeMount(module_name, {path.name: path})
    files: dict[str, Path] = {}
    for file in sorted(pkg_dir.rglob("*")):
        if any(part in _SKIP_DIRS for part in file.relative_to(pkg_dir).parts):
            continue
        if file.is_file() and file.suffix not in (".pyc", ".pyo"):
            files[str(Path(top) / file.relative_to(pkg_dir))] = file
            if len(files) > _MAX_MOUNT_FILES:
                raise ValueError(f"package {top} has more than {_MAX_MOUNT_FILES} files; too many to mount")
    return CodeMount(module_name, files)

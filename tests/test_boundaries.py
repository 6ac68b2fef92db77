"""The four sides of skiff share only ``skiff.protocol``, and the server has no import
circles. Read from the source with ``ast`` (every import counts: at the top, inside a
function, or under ``TYPE_CHECKING``), so nothing has to run for a wrong import to fail.

The rules, and the few exceptions with their reasons, are in DESIGN.md ("Layout").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "skiff"

# (importer prefix, imported module) pairs allowed across a boundary, with the reason.
EXCEPTIONS = {
    # SDK value types the server rebuilds from their wire form to use their meaning (the
    # backoff formula, the next fire time), so each rule is written once.
    ("skiff.server", "skiff.retries"),
    ("skiff.server", "skiff.schedule"),
    ("skiff.server", "skiff._cron"),
    # Local placement runs the node side in the server's own process: it is the one
    # place the server reaches a runtime, an image builder or the GPU inventory.
    ("skiff.server.placement.local", "skiff.worker"),
    # `skiff server start` is the server's own command.
    ("skiff.cli.server", "skiff.server"),
    # At a normal stop the container commits its mounted volumes with the same code a
    # user's `vol.commit()` runs in that process.
    ("skiff._container.entrypoint", "skiff.volume"),
}


def side(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("protocol", "server", "worker", "_container"):
        return parts[1]
    return "sdk"  # the SDK's modules and the CLI


ALLOWED = {
    "protocol": {"protocol"},
    "server": {"protocol", "server"},
    "worker": {"protocol", "worker"},
    "_container": {"protocol", "_container"},
    "sdk": {"protocol", "sdk"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, int]]:
    """Every skiff module ``path`` imports, with its line."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "skiff"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "skiff":
                continue
            for alias in node.names:  # `from skiff.server import api` imports skiff.server.api
                sub = f"{target}.{alias.name}"
                found.append((sub if _is_module(sub) else target, node.lineno))
    return found


def _is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


SOURCES = sorted(ROOT.rglob("*.py"))


def _excepted(importer: str, target: str) -> bool:
    return any((importer == who or importer.startswith(who + ".")) and (target == what or target.startswith(what + "."))
               for who, what in EXCEPTIONS)


def test_sides_share_only_the_protocol_package() -> None:
    wrong = []
    for path in SOURCES:
        importer = module_name(path)
        for target, line in imports(path):
            if target == "skiff" and side(importer) != "sdk":
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: imports the skiff package (the SDK)")
                continue
            if side(target) not in ALLOWED[side(importer)] and not _excepted(importer, target):
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: {side(importer)} imports {target}")
    assert not wrong, "imports across a boundary:\n" + "\n".join(wrong)


def test_protocol_needs_only_the_standard_library_and_cloudpickle() -> None:
    import sys

    wrong = []
    for path in sorted((ROOT / "protocol").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("cloudpickle", "skiff"):
                    wrong.append(f"{path.name}: imports {name}")
    assert not wrong, wrong


def _graph(prefix: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SOURCES:
        name = module_name(path)
        if name.startswith(prefix):
            graph[name] = {t for t, _ in imports(path) if t.startswith(prefix) and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("prefix", ["skiff.server", "skiff.protocol", "skiff.worker", "skiff._container"])
def test_no_import_circles(prefix: str) -> None:
    graph = _graph(prefix)
    # A package's __init__ importing its own modules is how a package shows its surface,
    # not a circle between collaborators.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    assert _cycles(graph) == []


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    """The rules above would catch the imports they are meant to catch."""
    assert side("skiff.server.control") == "server" and side("skiff.functions") == "sdk"
    assert "sdk" not in ALLOWED["server"] and "server" not in ALLOWED["sdk"]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert not _excepted("skiff.server.control", "skiff.worker.runtime")
    assert _excepted("skiff.server.placement.local", "skiff.worker.runtime.base")

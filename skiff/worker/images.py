"""The image builder: turns an image's steps into cached, immutable overlayfs layers.

A layer's id hashes its parent's id and its step (local files enter by content hash),
so an unchanged image is a directory lookup. Only missing layers are built: each in a
temporary directory, renamed into place when its step succeeds, so a failed step leaves
nothing behind. One lock per layer id makes concurrent builds of the same image do the
work once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol.errors import ImageBuildError
from ..protocol.images import Step, describe, layer_ids
from .runtime.base import BuiltImage
from .runtime.oci import RUNTIME_DIR, OciRuntime, runtime_sources

BUILD_DIR = "/opt/skiff-build"
LOG_TAIL = 30
DEBIAN_MIRROR_ENV = "SKIFF_DEBIAN_MIRROR"

Event = dict[str, Any]  # {"type": "step"|"line"|"done"|"cached", "index": int, ...}
EventSink = Callable[[Event], None]


@dataclass
class _Meta:
    env: dict[str, str]
    workdir: str
    has_fs: bool


class ImageBuilder:
    def __init__(self, root: Path, runtime: OciRuntime, blob_path: Callable[[str], Path]) -> None:
        self.layers_dir = root / "layers"
        self.layers_dir.mkdir(parents=True, exist_ok=True)
        self.uv_cache = root / "uv-cache"
        self.uv_cache.mkdir(exist_ok=True)
        self.runtime = runtime
        self.blob_path = blob_path
        self._locks: dict[str, asyncio.Lock] = {}

    def cached(self, steps: list[Step]) -> BuiltImage | None:
        """The built image if every layer exists and nothing asks for a rebuild."""
        if any(s.get("force") for s in steps):
            return None
        ids = layer_ids(steps)
        found = [self._read_meta(i) for i in ids]
        metas = [m for m in found if m is not None]
        if len(metas) != len(found):
            return None
        return self._image(ids, metas)

    def _read_meta(self, layer_id: str) -> _Meta | None:
        try:
            data = json.loads((self.layers_dir / layer_id / "meta.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return _Meta(env=data["env"], workdir=data["workdir"], has_fs=data["has_fs"])

    def _image(self, ids: list[str], metas: list[_Meta]) -> BuiltImage:
        layers = [self.layers_dir / i / "fs" for i, m in zip(ids, metas, strict=True) if m.has_fs]
        return BuiltImage(image_id=ids[-1], layers=layers, env=metas[-1].env, workdir=metas[-1].workdir)

    async def build(self, steps: list[Step], emit: EventSink) -> BuiltImage:
        ids = layer_ids(steps)
        metas: list[_Meta] = []
        forcing = False
        for index, (step, layer_id) in enumerate(zip(steps, ids, strict=True)):
            forcing = forcing or bool(step.get("force"))
            lock = self._locks.setdefault(layer_id, asyncio.Lock())
            async with lock:
                meta = None if forcing else self._read_meta(layer_id)
                if meta is not None:
                    emit({"type": "cached", "index": index, "description": describe(step)})
                else:
                    emit({"type": "step", "index": index, "description": describe(step)})
                    started = time.monotonic()
                    parent = metas[-1] if metas else _Meta(env={}, workdir="/root", has_fs=False)
                    lower = [self.layers_dir / i / "fs" for i, m in zip(ids, metas, strict=False) if m.has_fs]
                    meta = await self._build_layer(index, step, layer_id, parent, lower, emit)
                    emit({"type": "done", "index": index, "seconds": round(time.monotonic() - started, 2)})
            metas.append(meta)
        return self._image(ids, metas)

    async def _build_layer(self, index: int, step: Step, layer_id: str, parent: _Meta,
                           lower: list[Path], emit: EventSink) -> _Meta:
        tmp = Path(tempfile.mkdtemp(dir=self.layers_dir, prefix=f".tmp-{layer_id}-"))
        fs = tmp / "fs"
        fs.mkdir()
        tail: list[str] = []

        def on_line(line: str) -> None:
            tail.append(line)
            del tail[:-LOG_TAIL]
            emit({"type": "line", "index": index, "text": line})

        try:
            env, workdir, has_fs = dict(parent.env), parent.workdir, True
            kind = step["kind"]
            if kind == "env":
                env.update(step["vars"])
                has_fs = False
            elif kind == "workdir":
                workdir, has_fs = step["path"], False
            elif kind == "debian_slim":
                await self._debootstrap(step, fs, on_line, describe(step))
            elif kind == "copy":
                await asyncio.to_thread(self._copy_files, step, fs)
            else:
                await self._run_in_container(index, step, lower, fs, env, workdir, on_line, tail)
            meta = {"env": env, "workdir": workdir, "has_fs": has_fs, "step": describe(step), "built_at": time.time()}
            (tmp / "meta.json").write_text(json.dumps(meta))
            if not has_fs:
                fs.rmdir()
            target = self.layers_dir / layer_id
            if target.exists():  # a forced rebuild replaces the old layer
                trash = self.layers_dir / f".old-{layer_id}-{os.getpid()}-{time.monotonic_ns()}"
                target.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
            tmp.rename(target)
            return _Meta(env=env, workdir=workdir, has_fs=has_fs)
        finally:
            if tmp.exists():
                await asyncio.to_thread(shutil.rmtree, tmp, True)

    async def _debootstrap(self, step: Step, fs: Path, on_line: Callable[[str], None], what: str) -> None:
        mmdebstrap = shutil.which("mmdebstrap")
        if mmdebstrap is None:
            raise ImageBuildError("building a debian_slim base needs mmdebstrap; scripts/setup installs it")
        cmd = [mmdebstrap, "--variant=minbase", "--include=python3,ca-certificates", "--aptopt=Acquire::Retries 3",
               "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*.bin",
               step["suite"], str(fs)]
        mirror = os.environ.get(DEBIAN_MIRROR_ENV)
        if mirror:
            cmd.append(mirror)
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        tail: list[str] = []
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            tail = (tail + [line])[-LOG_TAIL:]
            on_line(line)
        code = await proc.wait()
        if code != 0:
            raise ImageBuildError(_failure(what, shlex.join(cmd), code, tail))

    def _copy_files(self, step: Step, fs: Path) -> None:
        base = fs / step["remote_path"].lstrip("/")
        for rel, blob_id in step["files"].items():
            dest = base / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.blob_path(blob_id), dest)

    async def _run_in_container(self, index: int, step: Step, lower: list[Path], fs: Path, env: dict[str, str],
                                workdir: str, on_line: Callable[[str], None], tail: list[str]) -> None:
        if not lower:
            raise ImageBuildError(f"step {index + 1} ({describe(step)}) needs a base image below it")
        scratch = Path(tempfile.mkdtemp(prefix="skiff-build-"))
        try:
            script, binds = self._script(step, scratch)
            code = await self.runtime.run_build_step(
                layers=lower, upper=fs, script=script, env=env, workdir=workdir, binds=binds,
                on_line=on_line, name=f"{index}-{os.getpid()}-{time.monotonic_ns()}",
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        for stub in (BUILD_DIR, RUNTIME_DIR):  # mount points the step left behind
            stub_dir = fs / stub.lstrip("/")
            if stub_dir.is_dir():
                shutil.rmtree(stub_dir, ignore_errors=True)
                with contextlib.suppress(OSError):
                    stub_dir.parent.rmdir()  # /opt, if the step made it only for us
        if code != 0:
            raise ImageBuildError(_failure(f"step {index + 1} ({describe(step)})", script, code, tail))

    def _script(self, step: Step, scratch: Path) -> tuple[str, list[tuple[str | Path, str, bool]]]:
        kind = step["kind"]
        binds: list[tuple[str | Path, str, bool]] = [(scratch, BUILD_DIR, False)]
        if kind == "apt":
            pkgs = shlex.join(step["packages"])
            return (f"apt-get update -qq\napt-get install -y -q --no-install-recommends {pkgs}\n"
                    "rm -rf /var/lib/apt/lists/*"), binds
        if kind in ("pip", "pip_requirements"):
            uv_bin = _uv_binary()
            binds += [(uv_bin, f"{BUILD_DIR}/bin/uv", True), (self.uv_cache, f"{BUILD_DIR}/cache", False)]
            # Bytecode compiled now saves every cold start from compiling the packages again.
            args = ["pip", "install", "--system", "--break-system-packages", "--python", "python3", "--compile-bytecode"]
            if step.get("index_url"):
                args += ["--index-url", step["index_url"]]
            if step.get("extra_index_url"):
                args += ["--extra-index-url", step["extra_index_url"]]
            if step.get("pre"):
                args += ["--prerelease", "allow"]
            if kind == "pip":
                targets = shlex.join(step["packages"])
            else:
                (scratch / "requirements.txt").write_text(step["content"])
                targets = f"-r {BUILD_DIR}/requirements.txt"
            extra = step.get("extra_options") or ""
            return (f"export UV_CACHE_DIR={BUILD_DIR}/cache UV_LINK_MODE=copy UV_NO_PROGRESS=1\n"
                    f"{BUILD_DIR}/bin/uv {shlex.join(args)} {extra} {targets}"), binds
        if kind == "run":
            return "\n".join(step["commands"]), binds
        if kind == "run_function":
            import base64

            (scratch / "fn.pkl").write_bytes(base64.b64decode(step["pickled"]))
            binds += [(src, dst, True) for src, dst in runtime_sources()]
            code = (f"import sys; sys.path.insert(0, {RUNTIME_DIR!r}); import cloudpickle; "
                    f"cloudpickle.load(open({BUILD_DIR + '/fn.pkl'!r}, 'rb'))()")
            return f"python3 -c {shlex.quote(code)}", binds
        raise ImageBuildError(f"unknown image step kind {kind!r}")


def _uv_binary() -> str:
    """uv comes with skiff's own dependencies (the ``uv`` package ships its binary)."""
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise ImageBuildError("pip_install needs uv, which skiff's setup installs into its virtualenv") from None
        return found


def _failure(what: str, command: str, code: int, tail: list[str]) -> str:
    log = "\n".join("    " + line for line in tail) or "    (no output)"
    return f"image build failed at {what}:\n  command: {command}\n  exit code: {code}\n  last lines of its log:\n{log}"

"""Runtime ``oci``: each container is an OCI bundle over an overlayfs of its image's
layers, started with crun (or runc), with its own namespaces, cgroup limits and network.

Inside, the container sees its image, its code read-only at ``/root``, skiff's
in-container runtime read-only at ``/opt/skiff``, and the control plane's API as a Unix
socket at ``/run/skiff/api.sock`` (and, for a web function, the directory of its own
socket at ``/run/skiff/web``). Nothing else of the host is visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ...protocol.webproto import SOCKET_NAME
from .. import gpus
from . import bundle
from .base import BuiltImage, Capabilities, ContainerHandle, ContainerRequest, ExitSink, LogSink
from .cgroups import ContainerCgroup
from .host import OciHost, host_rlimits
from .network import DNS_SERVER, ContainerNetwork
from .process import pump_lines

log = logging.getLogger("skiff.runtime")

IN_CONTAINER_API = "/run/skiff/api.sock"
IN_CONTAINER_WEB = "/run/skiff/web"  # a web function's socket directory, shared with the gateway
RUNTIME_DIR = "/opt/skiff"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CA_PATH = "/etc/ssl/certs/ca-certificates.crt"


def _ca_env() -> dict[str, str]:
    """Point the usual HTTPS clients (OpenSSL, requests, uv, pip) at the host's CA bundle."""
    return {"SSL_CERT_FILE": CA_PATH, "REQUESTS_CA_BUNDLE": CA_PATH, "PIP_CERT": CA_PATH, "CURL_CA_BUNDLE": CA_PATH}


def runtime_sources() -> list[tuple[Path, str]]:
    """skiff's in-container runtime and its one dependency, mounted read-only (found
    without importing them: the node side does not import the SDK)."""
    return [(_package_dir("skiff"), f"{RUNTIME_DIR}/skiff"), (_package_dir("cloudpickle"), f"{RUNTIME_DIR}/cloudpickle")]


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {name} package is not installed where the server runs")
    return Path(next(iter(spec.submodule_search_locations)))


class OciRuntime:
    name = "oci"
    capabilities = Capabilities(isolation=True, resource_limits=True, images=True, gpu=False)

    def __init__(self, host: OciHost, state_dir: Path, api_socket: Path) -> None:
        self.host = host
        self.state_dir = state_dir / "containers"
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clean_leftovers()
        self.api_socket = api_socket
        self._resolv = state_dir / "resolv.conf"
        self._resolv.write_text(f"nameserver {DNS_SERVER}\n")

    def _clean_leftovers(self) -> None:
        """A server that died (even by SIGKILL) left its containers running, with their
        mounts, network namespaces, slirp4netns processes and cgroups: stop and remove
        each, found by the bundles under this server's own state directory (other skiff
        servers on the machine keep theirs)."""
        for root in self.state_dir.iterdir():
            cid = root.name
            subprocess.run([self.host.binary, "kill", cid, "KILL"], capture_output=True)
            subprocess.run([self.host.binary, "delete", "-f", cid], capture_output=True)
            for merged in sorted(root.glob("volumes/*/merged")) + [root / "rootfs"]:
                bundle.unmount(merged)
            ContainerNetwork(cid, self.host.slirp4netns, self.host.nft).remove_leftover()
            ContainerCgroup(cid, self.host.cgroup_version, None).remove()
            shutil.rmtree(root, ignore_errors=True)

    def _common_binds(self) -> list[tuple[str | Path, str, bool]]:
        binds: list[tuple[str | Path, str, bool]] = [(src, dst, True) for src, dst in runtime_sources()]
        if self.host.ca_bundle:
            binds.append((self.host.ca_bundle, CA_PATH, True))
        return binds

    async def start(self, req: ContainerRequest, on_log: LogSink, on_exit: ExitSink) -> ContainerHandle:
        if req.image is None:
            raise RuntimeError("the oci runtime needs a built image for every container")
        cid = req.container_id
        root = self.state_dir / cid
        rootfs = root / "rootfs"
        cgroup = ContainerCgroup(cid, self.host.cgroup_version, req.memory_mib)
        network = ContainerNetwork(cid, self.host.slirp4netns, self.host.nft)
        cleanup = _Cleanup(root, rootfs, cgroup, network)
        try:
            root.mkdir(mode=0o700)  # its config.json holds the container's token
            await asyncio.to_thread(bundle.mount_overlay, req.image.layers, root / "upper", root / "work", rootfs)
            await asyncio.to_thread(cgroup.create)
            await network.create()
            env = {"PATH": DEFAULT_PATH, "HOME": "/root", "LANG": "C.UTF-8", **req.image.env, **req.env}
            env.update({
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": f"{RUNTIME_DIR}:/root",
                "SKIFF_SERVER_URL": f"unix://{IN_CONTAINER_API}",
                "SKIFF_TOKEN": req.token,
                "SKIFF_CONTAINER_ID": cid,
                "SKIFF_FUNCTION_ID": req.function_id,
                "SKIFF_IS_CONTAINER": "1",
            })
            if self.host.ca_bundle:
                env = {**_ca_env(), **env}
            binds = self._common_binds() + [
                (req.code_dir, "/root", True),
                (self.api_socket, IN_CONTAINER_API, False),
                (self._resolv, "/etc/resolv.conf", True),
            ] + [(src, dst, True) for src, dst in req.mounts]
            if req.web_dir is not None:
                binds.append((req.web_dir, IN_CONTAINER_WEB, False))
                env["SKIFF_WEB_SOCKET"] = f"{IN_CONTAINER_WEB}/{SOCKET_NAME}"
            if req.gpus:
                indices = [g.index for g in req.gpus]
                env["SKIFF_GPU_INDICES"] = ",".join(map(str, indices))
                env["NVIDIA_VISIBLE_DEVICES"] = ",".join(g.uuid or str(g.index) for g in req.gpus)
                binds += [(f, f, True) for f in gpus.driver_files()]
            for i, (tree, path) in enumerate(req.volumes):
                # The version's tree stays read-only below; this container writes above it.
                merged = root / "volumes" / str(i) / "merged"
                await asyncio.to_thread(bundle.mount_overlay, [tree], merged.parent / "upper",
                                        merged.parent / "work", merged)
                cleanup.volume_mounts.append(merged)
                binds.append((merged, path, False))
            spec = bundle.config(
                rootfs=rootfs, args=["python3", "-m", "skiff._container"], env=env, cwd=req.image.workdir,
                binds=binds, rlimits=host_rlimits(), netns=network.path, cgroups_path=cgroup.runtime_path,
                cpu=req.cpu,
            )
            if req.gpus:
                bundle.add_devices(spec, gpus.device_nodes([g.index for g in req.gpus]))
            bundle.write_private(root / "config.json", json.dumps(spec))
            proc = await asyncio.create_subprocess_exec(
                self.host.binary, "run", "--bundle", str(root), cid,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True, limit=1 << 20,
            )
        except BaseException:
            await cleanup.run(self.host.binary, cid)
            raise

        readers = [
            asyncio.create_task(pump_lines(proc.stdout, cid, "stdout", on_log)),
            asyncio.create_task(pump_lines(proc.stderr, cid, "stderr", on_log)),
        ]

        async def watch() -> None:
            code = await proc.wait()
            await asyncio.gather(*readers, return_exceptions=True)
            oom = await asyncio.to_thread(cgroup.oom_killed, code in (137, -9))
            await cleanup.run(self.host.binary, cid)
            await on_exit(cid, code, oom)

        asyncio.create_task(watch(), name=f"watch-{cid}")
        return ContainerHandle(container_id=cid, pid=proc.pid, native=proc)

    async def kill(self, handle: ContainerHandle) -> None:
        proc = await asyncio.create_subprocess_exec(
            self.host.binary, "kill", handle.container_id, "KILL",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        await proc.wait()

    async def run_build_step(
        self, *, layers: list[Path], upper: Path, script: str, env: dict[str, str], workdir: str,
        binds: list[tuple[str | Path, str, bool]], on_line: Callable[[str], None], name: str,
    ) -> int:
        """Run ``script`` with ``sh -e`` over ``layers``, writing changes into ``upper``.

        Build steps share the host's network, so apt and pip reach their registries.
        """
        root = upper.parent / f".build-{name}"
        rootfs = root / "rootfs"
        try:
            await asyncio.to_thread(bundle.mount_overlay, layers, upper, root / "work", rootfs)
            full_env = {"PATH": DEFAULT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive", **env}
            resolv = Path("/etc/resolv.conf")
            all_binds = list(binds) + ([(resolv.resolve(), "/etc/resolv.conf", True)] if resolv.exists() else [])
            if self.host.ca_bundle:
                all_binds.append((self.host.ca_bundle, CA_PATH, True))
                full_env.update(_ca_env())
            spec = bundle.config(
                rootfs=rootfs, args=["/bin/sh", "-ec", script], env=full_env, cwd=workdir, binds=all_binds,
                rlimits=host_rlimits(), netns=None, cgroups_path=None,
            )
            spec["process"]["noNewPrivileges"] = False
            bundle.write_private(root / "config.json", json.dumps(spec))
            proc = await asyncio.create_subprocess_exec(
                self.host.binary, "run", "--bundle", str(root), f"build-{name}",
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                limit=1 << 20,
            )
            await pump_lines(proc.stdout, name, "stdout", lambda _c, _s, line: on_line(line))
            return await proc.wait()
        finally:
            await asyncio.to_thread(bundle.unmount, rootfs)
            proc_del = await asyncio.create_subprocess_exec(
                self.host.binary, "delete", "-f", f"build-{name}",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
            await proc_del.wait()
            await asyncio.to_thread(shutil.rmtree, root, True)


class _Cleanup:
    """Undo everything ``start`` set up, whatever point it reached."""

    def __init__(self, root: Path, rootfs: Path, cgroup: ContainerCgroup, network: ContainerNetwork) -> None:
        self.root, self.rootfs, self.cgroup, self.network = root, rootfs, cgroup, network
        self.volume_mounts: list[Path] = []

    async def run(self, binary: str, cid: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            binary, "delete", "-f", cid, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await proc.wait()
        await asyncio.to_thread(bundle.unmount, self.rootfs)
        for merged in self.volume_mounts:
            await asyncio.to_thread(bundle.unmount, merged)
        with contextlib.suppress(Exception):
            await self.network.remove()
        await asyncio.to_thread(self.cgroup.remove)
        await asyncio.to_thread(shutil.rmtree, self.root, True)


__all__ = ["BuiltImage", "OciRuntime"]

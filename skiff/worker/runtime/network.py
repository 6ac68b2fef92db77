"""Container networking: a network namespace per container, with outbound access
through slirp4netns.

Why slirp4netns: it is a user-space TCP/IP stack, so giving a container the internet
changes nothing on the host (no bridges, veth pairs or NAT rules to leak or clean up),
and ``--disable-host-loopback`` keeps the container away from every service listening on
the host's loopback, the control plane's database included. The control plane's API is
the one thing it can reach, through a Unix socket mounted into the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from pathlib import Path

NETNS_DIR = Path("/run/netns")
DNS_SERVER = "10.0.2.3"  # slirp4netns's built-in resolver


class ContainerNetwork:
    def __init__(self, container_id: str, slirp4netns: str | None) -> None:
        self.name = "skiff-" + container_id[-12:]
        self.path = NETNS_DIR / self.name
        self.slirp4netns = slirp4netns
        self._slirp: asyncio.subprocess.Process | None = None

    async def create(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "add", self.name, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"could not create network namespace {self.name}: {err.decode().strip()}")
        if self.slirp4netns is None:
            return
        read_fd, write_fd = os.pipe()
        self._slirp = await asyncio.create_subprocess_exec(
            self.slirp4netns, "--configure", "--mtu=65520", "--disable-host-loopback",
            "--ready-fd", str(write_fd), "--netns-type=path", str(self.path), "tap0",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(write_fd,), start_new_session=True,
        )
        os.close(write_fd)
        try:
            ready = await asyncio.wait_for(asyncio.to_thread(os.read, read_fd, 1), 10)
        finally:
            os.close(read_fd)
        if ready != b"1":
            raise RuntimeError("slirp4netns did not come up for the container's network")

    async def remove(self) -> None:
        if self._slirp is not None and self._slirp.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._slirp.kill()
            await self._slirp.wait()
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "delete", self.name, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await proc.wait()

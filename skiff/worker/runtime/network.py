"""Container networking: a network namespace per container, with outbound access
through slirp4netns.

Why slirp4netns: it is a user-space TCP/IP stack, so giving a container the internet
changes nothing on the host (no bridges, veth pairs or NAT rules to leak or clean up),
and ``--disable-host-loopback`` keeps the container away from every service listening on
the host's loopback, the control plane's database included.

slirp4netns connects to any other address as the host would, the host's own addresses
included (a service bound to 0.0.0.0 would answer). So before the container starts, an
nftables table in its namespace refuses every address the host holds, and link-local
ones (a cloud's metadata service); the container has no CAP_NET_ADMIN to undo it, nor
CAP_NET_RAW to write frames past it. The control plane's API is the one thing of the
host's it can reach, through a Unix socket mounted into the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import time
from pathlib import Path

NETNS_DIR = Path("/run/netns")
DNS_SERVER = "10.0.2.3"  # slirp4netns's built-in resolver
SLIRP_HOST = "10.0.2.2"  # slirp4netns's address for the host
# Link-local addresses are the host's too in all but name: a cloud's instance metadata
# service (169.254.169.254, fd00:ec2::254) hands out the machine's own credentials.
ALWAYS_REFUSED = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254")
HOST_ADDRESSES_TTL = 30.0  # seconds the host's address list is reused before it is read again

_host_addresses: tuple[float, list[str]] = (0.0, [])


def host_addresses() -> list[str]:
    """Every address this machine holds, on any interface but loopback (which slirp4netns
    already keeps the container from): what a container must not reach."""
    global _host_addresses
    read_at, found = _host_addresses
    if time.monotonic() - read_at < HOST_ADDRESSES_TTL:
        return found
    out = subprocess.run(["ip", "-j", "address", "show"], capture_output=True, text=True, check=True).stdout
    found = sorted({a["local"] for link in json.loads(out) for a in link.get("addr_info", [])
                    if "local" in a and not ipaddress.ip_address(a["local"]).is_loopback})
    _host_addresses = (time.monotonic(), found)
    return found


def isolation_rules(addresses: list[str]) -> str:
    """An nftables ruleset refusing connections to ``addresses`` (and slirp's host address)."""
    own = [a for a in addresses if not ipaddress.ip_address(a).is_link_local]  # the prefixes cover those
    v4 = sorted({a for a in (*own, *ALWAYS_REFUSED) if ":" not in a} | {SLIRP_HOST})
    v6 = sorted({a for a in (*own, *ALWAYS_REFUSED) if ":" in a})
    lines = ["table inet skiff_isolation {", "  chain out {", "    type filter hook output priority 0; policy accept;",
             f"    ip daddr {{ {', '.join(v4)} }} reject"]
    if v6:
        lines.append(f"    ip6 daddr {{ {', '.join(v6)} }} reject")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


class ContainerNetwork:
    def __init__(self, container_id: str, slirp4netns: str | None, nft: str | None = None) -> None:
        self.name = "skiff-" + container_id[-12:]
        self.path = NETNS_DIR / self.name
        self.slirp4netns = slirp4netns
        self.nft = nft
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
        await self._isolate()
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

    async def _isolate(self) -> None:
        """Refuse the host's own addresses from inside the namespace, before anything runs there."""
        if self.nft is None:
            raise RuntimeError("nft (Debian's nftables package) is needed to keep containers off the host's "
                               "addresses; install it (scripts/setup does) or run the server with SKIFF_RUNTIME=process")
        rules = isolation_rules(await asyncio.to_thread(host_addresses))
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.name, self.nft, "-f", "-",
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        _, err = await proc.communicate(rules.encode())
        if proc.returncode != 0:
            raise RuntimeError(f"could not fence the container's network off the host: {err.decode().strip()}")

    def remove_leftover(self) -> None:
        """What a server that died left of this namespace: its slirp4netns (which outlives
        the server, in a session of its own) and the namespace itself."""
        target = str(self.path).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"slirp4netns") and target in argv:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(proc.name), signal.SIGKILL)
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)

    async def remove(self) -> None:
        if self._slirp is not None and self._slirp.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._slirp.kill()
            await self._slirp.wait()
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "delete", self.name, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await proc.wait()

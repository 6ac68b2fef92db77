"""This machine, as the OCI runtime needs it: which OCI binary, and the fixes some hosts
need before containers can start. Each fix is made in code and said out loud once.

Known quirks handled here:
- crun 1.8 refuses to run on a hybrid cgroup host (v1 controllers plus a v2 mount)
  unless a v1 ``hugetlb`` hierarchy is mounted; we mount one.
- Without CAP_SYS_RESOURCE a container cannot get rlimits above the host's, so the
  bundle copies the host's own limits instead of the OCI defaults.
- Outbound HTTPS needs CA certificates: the host's bundle is mounted read-only.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("skiff.runtime")

CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
_RLIMITS = {"RLIMIT_NOFILE": resource.RLIMIT_NOFILE, "RLIMIT_NPROC": resource.RLIMIT_NPROC}


class HostNotReady(RuntimeError):
    """The OCI runtime cannot run here; the message says what is missing."""


@dataclass
class OciHost:
    binary: str  # path to crun or runc
    cgroup_version: int
    ca_bundle: str | None
    slirp4netns: str | None
    nft: str | None = None  # fences a container's network off the host's own addresses
    notes: list[str] = field(default_factory=list)  # what was done to this host, for the user

    @property
    def name(self) -> str:
        return Path(self.binary).name


def _cgroup_version() -> int:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return 2
    return 1


def _is_hybrid() -> bool:
    return _cgroup_version() == 1 and Path("/sys/fs/cgroup/unified").is_dir() and os.path.ismount("/sys/fs/cgroup/unified")


def _ensure_hugetlb(notes: list[str]) -> None:
    target = Path("/sys/fs/cgroup/hugetlb")
    if os.path.ismount(target):
        return
    try:
        target.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(target)],
                       check=True, capture_output=True, text=True)
        notes.append("mounted a cgroup v1 hugetlb hierarchy at /sys/fs/cgroup/hugetlb, "
                     "which crun needs on this hybrid cgroup host")
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise HostNotReady(
            "crun refuses hybrid cgroup hosts until a cgroup v1 hugetlb hierarchy is mounted, "
            f"and mounting one failed ({detail.strip()}). Run as root, or use SKIFF_OCI_BINARY=runc."
        ) from exc


def host_rlimits() -> list[dict[str, str | int]]:
    """The host's own limits: a container may not be given more without CAP_SYS_RESOURCE."""
    out: list[dict[str, str | int]] = []
    for name, res in _RLIMITS.items():
        soft, hard = resource.getrlimit(res)
        cap = 2**63 - 1
        out.append({"type": name, "soft": soft if soft >= 0 else cap, "hard": hard if hard >= 0 else cap})
    return out


def probe(preferred: str | None = None) -> OciHost:
    """Check this machine can run OCI containers and fix what can be fixed."""
    if os.name != "posix" or not Path("/proc/self/ns").exists():
        raise HostNotReady("the oci runtime needs Linux")
    if os.geteuid() != 0:
        raise HostNotReady("the oci runtime needs root (it mounts overlayfs and creates namespaces)")
    names = [preferred] if preferred else ["crun", "runc"]
    binary = next((shutil.which(n) for n in names if n and shutil.which(n)), None)
    if binary is None:
        raise HostNotReady(f"no OCI runtime found ({' or '.join(n for n in names if n)}); scripts/setup installs crun and runc")
    notes: list[str] = []
    if Path(binary).name == "crun" and _is_hybrid():
        _ensure_hugetlb(notes)
    notes.append("container rlimits are set to the host's own (raising them needs CAP_SYS_RESOURCE)")
    ca = next((c for c in CA_BUNDLES if Path(c).is_file()), None)
    if ca:
        notes.append(f"the host's CA bundle {ca} is mounted into containers for outbound HTTPS")
    else:
        notes.append("no host CA bundle found: outbound HTTPS from containers will fail certificate checks")
    slirp, nft = shutil.which("slirp4netns"), shutil.which("nft")
    if slirp is None:
        notes.append("slirp4netns is missing: containers get a network namespace with loopback only")
    elif nft is None:
        slirp = None  # a network that could reach the host's own addresses is worse than none
        notes.append("nft (nftables) is missing: containers get loopback only, since nothing could keep "
                     "them off the host's addresses; install nftables (scripts/setup does) for a network")
    return OciHost(binary=binary, cgroup_version=_cgroup_version(), ca_bundle=ca, slirp4netns=slirp, nft=nft,
                   notes=notes)

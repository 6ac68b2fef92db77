"""A throwaway PostgreSQL server for the test run: initdb into a temporary directory,
start it on a free port, and hand back its URL. Stopped and deleted at the end."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} was not found; scripts/setup installs the 'postgresql' package")
    return found[-1]


class PostgresServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="skiff-pg-"))
        self.data = self.dir / "data"
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as_user, *cmd], check=True, capture_output=True, cwd=self.dir)

    def start(self) -> str:
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "skiff", "--no-sync")
        self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start",
        )
        for _ in range(50):
            probe = subprocess.run(
                [_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "skiff", "-d", "postgres",
                 "-c", "CREATE DATABASE skiff"], capture_output=True,
            )
            if probe.returncode == 0:
                break
            time.sleep(0.2)
        return f"postgresql+psycopg://skiff@127.0.0.1:{self.port}/skiff"

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

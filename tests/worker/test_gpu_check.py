"""scripts/gpu-check, the prepared check for machines with GPUs, run against a stand-in
nvidia-smi: it must keep working as the code it checks changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.conftest import ROOT

FAKE_SMI = """#!/bin/sh
case "$*" in
  *query-gpu*) echo "0, NVIDIA H100 80GB HBM3, 81559, GPU-1234abcd";;
  *-L*) echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1234abcd)";;
esac
"""


def run_check(path: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=path)
    env.pop("SKIFF_GPUS", None)
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu-check")], env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_machine_without_gpus_has_nothing_to_check(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    result = run_check(str(empty) + ":/usr/bin:/bin")
    assert result.returncode == 2 and "no nvidia-smi" in result.stdout


def test_the_check_runs_against_a_stand_in_nvidia_smi(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(FAKE_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    result = run_check(f"{bin_dir}:{os.environ['PATH']}")
    out = result.stdout
    assert "[ok] inventory: 1 from nvidia-smi: #0 NVIDIA H100 80GB HBM3 81559 MiB GPU-1234abcd" in out, out
    assert '[ok] request gpu="any": fits' in out and '[ok] request gpu="H100": fits' in out
    assert '[ok] request gpu="any:2": does not fit' in out
    assert "[FAIL] device nodes for GPU 0: []" in out  # this machine has no /dev/nvidia*
    if os.geteuid() == 0 and (shutil.which("crun") or shutil.which("runc")):
        assert "[ok] nvidia-smi in an oci container: sees ['GPU 0: NVIDIA H100 80GB HBM3" in out, out
    assert result.returncode == 1, result.stderr

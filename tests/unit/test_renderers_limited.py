"""A renderer's process runs within its limits, and no at-fork handler of this interpreter runs
in it (inside the Pulumi program, gRPC's broke helm before it started)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gitops.renderers.limited import run_limited

LIMIT = 2 * 1024**3
SHOW_LIMITS = "import resource as r; print(r.getrlimit(r.RLIMIT_AS)[0], r.getrlimit(r.RLIMIT_CORE)[0])"


def test_the_child_has_the_address_space_cap_and_no_core_dumps(tmp_path):
    done = run_limited([sys.executable, "-c", SHOW_LIMITS], cwd=tmp_path, timeout=30, address_space=LIMIT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(LIMIT).encode(), b"0"]


def test_an_allocation_past_the_cap_fails_in_the_child(tmp_path):
    done = run_limited([sys.executable, "-c", "b = bytearray(3 * 1024**3)"], cwd=tmp_path, timeout=30,
                       address_space=LIMIT)
    assert done.returncode != 0 and b"MemoryError" in done.stderr


def test_a_child_past_its_time_is_killed(tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        run_limited([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path, timeout=0.5,
                    address_space=LIMIT)


def test_no_at_fork_handler_runs_in_the_child(tmp_path):
    script = (
        "import os, sys\n"
        "os.register_at_fork(after_in_child=lambda: os._exit(7))\n"
        "from pathlib import Path\n"
        "from gitops.renderers.limited import run_limited\n"
        f"done = run_limited([sys.executable, '-c', 'print(1)'], cwd=Path('.'), timeout=30, address_space={LIMIT})\n"
        "print(done.returncode, done.stdout.strip().decode())\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.split() == ["0", "1"], out.stderr

"""A renderer's process within limits, started without running Python in the forked child.

`preexec_fn` would set the limits between fork and exec, but it also runs this interpreter's
at-fork handlers in the child: inside the Pulumi program, gRPC's broke the child before helm
started ("epoll_wait error: Bad file descriptor"). Without it, subprocess starts the child with
vfork and exec, which returns once the renderer runs; the limits are then set on it with
prlimit(2), before it has read a byte of the repo.
"""
from __future__ import annotations

import resource
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_limited(command: Sequence[str], *, cwd: Path, timeout: float, address_space: int,
                env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """`command`'s exit code and output, its address space capped and no core dump; TimeoutExpired
    (the process killed) after `timeout` seconds, OSError if it cannot start."""
    with subprocess.Popen(list(command), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as process:
        try:
            resource.prlimit(process.pid, resource.RLIMIT_AS, (address_space, address_space))
            resource.prlimit(process.pid, resource.RLIMIT_CORE, (0, 0))
        except ProcessLookupError:
            pass  # it has ended already: nothing left to limit
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    return subprocess.CompletedProcess(list(command), process.returncode, stdout, stderr)

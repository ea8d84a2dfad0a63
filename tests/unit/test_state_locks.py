"""One writer per stack: the flock is exclusive and freed when its owner dies; Pulumi's own lock
files count as gone only when their process is."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitops.errors import LockError
from gitops.procs import pid_alive
from gitops.state.backend import StackFiles
from gitops.state.locks import StackLock, pulumi_locks

HOLD = """
import sys, time
from pathlib import Path
from gitops.state.locks import StackLock
StackLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_second_holder_is_refused_and_a_killed_owner_frees_the_lock(tmp_path):
    path = tmp_path / "watch.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockError, match=f"pid {holder.pid}"):
            StackLock(path).acquire(wait=False)
        with pytest.raises(LockError):
            StackLock(path).acquire(wait=True, timeout=0.3, poll=0.05)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        started = time.monotonic()
        lock = StackLock(path).acquire(wait=True, timeout=5, poll=0.05)
        assert time.monotonic() - started < 1
        assert json.loads(path.read_text())["pid"] == os.getpid()
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def _pulumi_lock(root, project, stack, pid, hostname):
    folder = root / ".pulumi" / "locks" / "organization" / project / stack
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pid}-{hostname}.json"
    path.write_text(json.dumps({"pid": pid, "username": "x", "hostname": hostname, "timestamp": "t"}))
    (folder / (path.name + ".attrs")).write_text("{}")
    return path


def test_only_dead_local_pulumi_locks_count_as_gone(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    gone = _pulumi_lock(tmp_path, "gitops", "s", dead.pid, host)
    alive = _pulumi_lock(tmp_path, "gitops", "s", os.getpid(), host)
    remote = _pulumi_lock(tmp_path, "gitops", "s", dead.pid, "another-host")
    _pulumi_lock(tmp_path, "gitops", "t", dead.pid, host)  # another stack's
    locks = {lock.path: lock.owner_gone() for lock in pulumi_locks(StackFiles(tmp_path, "gitops", "s"))}
    assert locks == {gone: True, alive: False, remote: False}


def test_a_zombie_owner_counts_as_gone():
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        assert not pid_alive(zombie.pid)  # exited, not yet reaped
        assert pid_alive(os.getpid())
    finally:
        zombie.wait()


def test_waiting_can_be_cancelled(tmp_path):
    path = tmp_path / "watch.lock"
    held = StackLock(path).acquire()
    try:
        flag = []
        started = time.monotonic()
        with pytest.raises(LockError):
            StackLock(path).acquire(wait=True, poll=0.05, on_wait=lambda _: flag.append(1),
                                    cancelled=lambda: bool(flag))
        assert time.monotonic() - started < 1
    finally:
        held.release()

"""What a killed run leaves in a file backend is found and repaired; what cannot be proved a
leftover is damage, reported with the manual step; a live run's stack is never touched."""
import gzip
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.state.backend import StackFiles
from gitops.state.leftovers import EMPTY_SIDE_FILE, TEMPORARY, repair, survey

CHECKPOINT = {"version": 3, "checkpoint": {"stack": "s", "latest": {"manifest": {}, "resources": []}}}


def backend(tmp_path: Path, stack: str = "s", checkpoint: dict | None = CHECKPOINT) -> StackFiles:
    files = StackFiles(tmp_path, "gitops", stack)
    files.stacks_dir.mkdir(parents=True, exist_ok=True)
    files.meta.write_text("version: 1\n")
    if checkpoint is not None:
        files.checkpoints[0].write_text(json.dumps(checkpoint))
    return files


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def lock(files: StackFiles, pid: int, host: str | None = None) -> Path:
    files.lock_dirs[0].mkdir(parents=True, exist_ok=True)
    path = files.lock_dirs[0] / f"{pid}.json"
    path.write_text(json.dumps({"pid": pid, "hostname": host or socket.gethostname(), "username": "u"}))
    return path


def test_a_clean_backend_has_nothing_to_repair(tmp_path):
    files = backend(tmp_path)
    (files.stacks_dir / "s.json.attrs").write_text('{"user.content_type":"application/json"}\n')
    found = survey(files, deep=True)
    assert found.leftovers == () and found.damage == () and found.pending == () and not found.busy


def test_empty_and_cut_short_side_files_are_removed_so_the_stack_reads_again(tmp_path):
    files = backend(tmp_path)
    empty = files.stacks_dir / "s.json.attrs"
    empty.write_bytes(b"")
    cut = files.stacks_dir / "s.json.bak.attrs"
    cut.write_text('{"user.content_type":"appl')
    meta = files.meta.with_name("meta.yaml.attrs")
    meta.write_bytes(b"")
    found = survey(files)
    assert {(item.path, item.why) for item in found.leftovers} == {(empty, EMPTY_SIDE_FILE), (cut, EMPTY_SIDE_FILE),
                                                                   (meta, EMPTY_SIDE_FILE)}
    assert {item.path for item in repair(found)} == {empty, cut, meta}
    assert not empty.exists() and not cut.exists() and files.checkpoints[0].exists()


def test_temporaries_of_this_stack_go_and_other_stacks_files_stay(tmp_path):
    files = backend(tmp_path, "prod")
    mine = files.stacks_dir / "prod.json.18f2a3b4c5d6e7f8.tmp"
    mine.write_text("{")
    theirs = [files.stacks_dir / "prod.eu.json.18f2a3b4c5d6e7f8.tmp", files.stacks_dir / "prod.eu.json.attrs"]
    for path in theirs:
        path.write_bytes(b"")
    found = survey(files)
    assert [(item.path, item.why) for item in found.leftovers] == [(mine, TEMPORARY)]
    repair(found)
    assert not mine.exists() and all(p.exists() for p in theirs)


def test_a_dead_runs_lock_goes_and_its_checkpoint_is_read_for_pending_operations(tmp_path):
    pending = {"type": "creating", "resource": {"urn": "urn:pulumi:s::gitops::kubernetes:core/v1:ConfigMap::c"}}
    files = backend(tmp_path, checkpoint={**CHECKPOINT, "checkpoint": {
        "latest": {"resources": [], "pending_operations": [pending]}}})
    stale = lock(files, dead_pid())
    side = stale.with_name(stale.name + ".attrs")
    side.write_text("{}")
    history = files.history_dir
    history.mkdir(parents=True)
    (history / "s-1.history.json.attrs").write_bytes(b"")
    found = survey(files)  # not asked to be deep: a killed run's lock makes it so
    assert found.killed_run and [op.type for op in found.pending] == ["creating"]
    assert found.pending[0].urn.endswith("::c")
    assert {item.path for item in found.leftovers} == {stale, side, history / "s-1.history.json.attrs"}
    repair(found)
    assert not stale.exists() and not side.exists()


def test_a_live_run_is_never_touched(tmp_path):
    files = backend(tmp_path)
    held = lock(files, os.getpid())
    empty = files.stacks_dir / "s.json.attrs"
    empty.write_bytes(b"")  # it may be this very moment of that run's write
    found = survey(files, deep=True)
    assert found.busy and found.leftovers == () and repair(found) == []
    assert held.exists() and empty.exists()


def test_another_hosts_lock_is_left_alone(tmp_path):
    files = backend(tmp_path)
    lock(files, dead_pid(), host="some-other-host")
    assert survey(files).busy


@pytest.mark.parametrize("content", [b"", b'{"checkpoint": {"latest": {"resources": [', b"\x00" * 10])
def test_a_cut_short_checkpoint_is_damage_with_the_manual_step(tmp_path, content):
    files = backend(tmp_path)
    files.checkpoints[0].write_bytes(content)
    backup = files.checkpoints[0].with_name("s.json.bak")
    backup.write_text(json.dumps(CHECKPOINT))
    found = survey(files, deep=True)
    assert len(found.damage) == 1 and found.damage[0].path == files.checkpoints[0]
    assert f"cp {backup} {files.checkpoints[0]}" in str(found.damage[0])
    assert repair(found) == []  # never a silent overwrite
    assert files.checkpoints[0].read_bytes() == content


def test_a_cut_short_checkpoint_is_not_read_unless_asked(tmp_path):
    files = backend(tmp_path)
    files.checkpoints[0].write_bytes(b"{")
    assert survey(files).damage == ()


def test_a_missing_checkpoint_beside_its_backup_is_damage(tmp_path):
    files = backend(tmp_path, checkpoint=None)
    backup = files.stacks_dir / "s.json.bak"
    backup.write_text(json.dumps(CHECKPOINT))
    found = survey(files)
    assert [d.path for d in found.damage] == [backup]
    assert "cp" in found.damage[0].manual_step


def test_a_compressed_checkpoint_is_read(tmp_path):
    files = backend(tmp_path, checkpoint=None)
    pending = {"type": "updating", "resource": {"urn": "u"}}
    state = {"checkpoint": {"latest": {"pending_operations": [pending]}}}
    (files.stacks_dir / "s.json.gz").write_bytes(gzip.compress(json.dumps(state).encode()))
    assert [op.type for op in survey(files, deep=True).pending] == ["updating"]
    (files.stacks_dir / "s.json.gz").write_bytes(gzip.compress(b"{")[:-4])
    assert survey(files, deep=True).damage


def test_a_new_stack_has_no_checkpoint_and_nothing_wrong(tmp_path):
    files = backend(tmp_path, checkpoint=None)
    found = survey(files, deep=True)
    assert found.damage == () and found.leftovers == () and found.pending is None

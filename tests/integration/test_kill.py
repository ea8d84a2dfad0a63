"""A SIGKILL at any moment of a run never leaves a stack that the next run cannot read (issue 20).

The whole session is killed (CLI, language host, provider), as when a pod is evicted, at moments
spread evenly over a 100-object run, by turns a `gitops up`, a watcher, and a plain `pulumi up`.
After each kill the next run (`gitops up`, or a restarted watcher) must converge with no manual
step: state equals cluster equals git, nothing lost from state, nothing orphaned in the cluster,
no lock or pending operation left, and the user's stack file intact."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import yaml

from gitops.state.leftovers import survey

from sessions import Watch, kill_session, session_pids, wait_for

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: {value}}}\n"
OBJECTS = 100
KILLS = 21
MODES = ("gitops up", "watcher", "pulumi up")


def desired(round_: int) -> dict[str, str]:
    """Alternating commits: each run deletes, updates and creates a third of what it touches."""
    start, value = (0, "a") if round_ % 2 == 0 else (OBJECTS // 2, "b")
    return {f"c{i:03}": value for i in range(start, start + OBJECTS)}


def files_of(project, objects: dict[str, str], previous: dict[str, str]) -> dict[str, str | None]:
    files: dict[str, str | None] = {f"{name}.yaml": None for name in previous if name not in objects}
    files.update({f"{name}.yaml": CM.format(name=name, value=value) for name, value in objects.items()})
    files["ns.yaml"] = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {project.namespace}}}\n"
    return files


def in_cluster(project) -> dict[str, str]:
    items = project.kubectl_json("get", "configmaps", "-n", project.namespace)["items"]
    return {i["metadata"]["name"]: i.get("data", {}).get("k") for i in items if i["metadata"]["name"].startswith("c")}


def in_state(project) -> dict[str, str]:
    found = {}
    for resource in project.deployment().get("resources", []):
        if resource["type"] == "kubernetes:core/v1:ConfigMap":
            outputs = resource.get("outputs", {})
            found[outputs["metadata"]["name"]] = (outputs.get("data") or {}).get("k")
    return found


def assert_converged(project, objects: dict[str, str], head: str) -> None:
    assert in_cluster(project) == objects, "cluster differs from git"
    assert in_state(project) == objects, "state differs from git"
    deployment = project.deployment()
    assert not deployment.get("pending_operations"), deployment.get("pending_operations")
    assert project.outputs()["commit"] == head
    left = survey(project.files, deep=True)
    assert not left.busy and left.leftovers == () and left.damage == (), left
    settings = yaml.safe_load((project.root / "stacks" / f"Pulumi.{project.stack}.yaml").read_text())
    assert settings["config"]["gitops:namespace"] == project.namespace, "the stack file lost its settings"


def status(project) -> dict:
    return project.watch_status()


def start(project, mode: str, log) -> subprocess.Popen:
    if mode == "watcher":
        return Watch(project, log, "--interval", "1").process
    if mode == "gitops up":
        argv = [sys.executable, "-m", "gitops", "--project-dir", str(project.root), "up", "--stack", project.stack,
                "-q"]
    else:
        argv = ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", project.stack]
    return subprocess.Popen(argv, cwd=project.root, env=project.env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def recover(project, mode: str, head: str, log) -> None:
    """The next run: a restarted watcher for a killed watcher, `gitops up` otherwise."""
    if mode != "watcher":
        project.gitops("up", "--stack", project.stack, "-q")
        return
    watch = Watch(project, log, "--interval", "1")
    try:
        wait_for(lambda: status(project).get("applied_commit") == head and status(project).get("state") == "idle",
                 240, "the restarted watcher to apply the commit", 0.2)
        assert watch.count("cycle.failed") == 0, log.read_text()
    finally:
        code = watch.stop()
    assert code == 0, log.read_text()


def test_a_kill_at_any_moment_is_followed_by_a_run_that_converges(project, tmp_path):
    project.write_stack(skipAwait=True, driftInterval=0, imageMode="off")
    round_, objects = 0, desired(0)
    head = project.repo.write(files_of(project, objects, {}), "round 0")
    project.gitops("up", "--stack", project.stack, "-q")
    # A whole run of the kind killed below (a third each deleted, updated, created), from process start.
    round_, previous, objects = 1, objects, desired(1)
    head = project.repo.write(files_of(project, objects, previous), "round 1")
    started = time.monotonic()
    project.gitops("up", "--stack", project.stack, "-q")
    full = time.monotonic() - started
    assert_converged(project, objects, head)
    report = [f"a whole `gitops up` deleting, updating and creating {OBJECTS // 2} objects each: {full:.1f} s"]
    for kill in range(KILLS):
        mode = MODES[kill % len(MODES)]
        round_, previous, objects = round_ + 1, objects, desired(round_ + 1)
        head = project.repo.write(files_of(project, objects, previous), f"round {round_}")
        at = full * (kill + 0.5) / KILLS
        run = start(project, mode, tmp_path / f"kill-{kill}.log")
        time.sleep(at)
        exited = run.poll() is not None
        kill_session(run)
        assert not session_pids(run.pid), "a process of the killed run survived"
        left = survey(project.files, deep=True)
        if mode == "watcher":
            # Commits land while the watcher is down: it comes back to another desired state, in which
            # what the killed run was creating is gone again. Adopted, then deleted: nothing orphaned.
            round_, previous, objects = round_ + 1, objects, desired(round_ + 1)
            head = project.repo.write(files_of(project, objects, previous), f"round {round_}")
        started = time.monotonic()
        recover(project, mode, head, tmp_path / f"recover-{kill}.log")
        assert_converged(project, objects, head)
        report.append(f"kill {kill + 1:2} ({mode:9}) at {at:4.1f} s{' (it had ended)' if exited else ''}: "
                      f"{len(left.leftovers)} leftover(s), {len(left.pending or ())} pending op(s); "
                      f"converged in {time.monotonic() - started:.1f} s")
    print("\n".join(report))


def side_files_on(project, tmp_path) -> None:
    """A backend that writes metadata side files, as a user's own `PULUMI_BACKEND_URL` may (gitops
    turns them off only where the URL does not say)."""
    project.env = {**project.env, "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}?metadata="}
    (tmp_path / "state").mkdir()


def leave_what_a_kill_leaves(project) -> list:
    """The leftovers of a kill during a checkpoint write, made on purpose: the window is too short
    to hit by timing alone."""
    files = project.files
    side = files.checkpoints[0].with_name(files.checkpoints[0].name + ".attrs")
    assert side.is_file(), "the backend should write side files here"
    side.write_bytes(b"")
    tmp = files.stacks_dir / f"{project.stack}.json.18f2a3b4c5d6e7f8.tmp"
    tmp.write_text('{"checkpoint": {')
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    files.lock_dirs[0].mkdir(parents=True, exist_ok=True)
    lock = files.lock_dirs[0] / "0c0c0c0c-dead-run.json"
    import socket

    lock.write_text(json.dumps({"pid": dead.pid, "username": "u", "hostname": socket.gethostname(),
                                "timestamp": "2026-12-01T00:00:00Z"}))
    return [side, tmp, lock]


def test_what_a_kill_leaves_in_the_backend_is_repaired_by_the_next_run(project, tmp_path):
    side_files_on(project, tmp_path)
    project.write_stack(skipAwait=True, driftInterval=0, imageMode="off")
    objects = {"c000": "a"}
    head = project.repo.write(files_of(project, objects, {}))
    project.gitops("up", "--stack", project.stack)
    leftovers = leave_what_a_kill_leaves(project)
    # The hazard is real: as it is, Pulumi cannot read the stack.
    broken = project.pulumi("stack", "export", check=False)
    assert broken.returncode != 0 and "EOF" in broken.stderr, broken.stderr

    objects = {"c000": "b", "c001": "b"}
    head = project.repo.write(files_of(project, objects, {"c000": "a"}))
    result = project.gitops("up", "--stack", project.stack)
    repaired = [line for line in result.stdout.splitlines() if line.startswith("recover: repaired")]
    assert len(repaired) == 3, result.stdout
    reasons = ("interrupted write", "interrupted before it was renamed", "that is gone")
    for path, reason in zip(leftovers, reasons):
        assert any(f" {path}: " in line and reason in line for line in repaired), (path, repaired)
    assert json.loads(leftovers[0].read_text()), "the side file is written afresh by the next checkpoint"
    assert not leftovers[1].exists() and not leftovers[2].exists()
    assert_converged(project, objects, head)

    # The same for a watcher: one log line says what it repaired and why.
    leftovers = leave_what_a_kill_leaves(project)
    objects = {"c001": "c"}
    head = project.repo.write(files_of(project, objects, {"c000": "b", "c001": "b"}))
    watch = Watch(project, tmp_path / "watch.log", "--interval", "1")
    try:
        wait_for(lambda: status(project).get("applied_commit") == head, 120, "the watcher to apply")
        repairs = [e for e in watch.events() if e["event"] == "recover.repaired"]
        assert len(repairs) == 1 and sorted(repairs[0]["files"]) == sorted(map(str, leftovers)), repairs
        assert "interrupted write" in repairs[0]["msg"] and "that is gone" in repairs[0]["msg"]
        assert watch.count("cycle.failed") == 0
    finally:
        code = watch.stop()
    assert code == 0
    assert_converged(project, objects, head)


def test_a_damaged_checkpoint_is_a_clear_error_and_stalls_the_watcher_until_fixed(project, tmp_path):
    project.write_stack(skipAwait=True, driftInterval=0, imageMode="off")
    head = project.repo.write(files_of(project, {"c000": "a"}, {}))
    project.gitops("up", "--stack", project.stack)
    head = project.repo.write(files_of(project, {"c000": "b"}, {"c000": "a"}))
    project.gitops("up", "--stack", project.stack)  # so that a backup of the first checkpoint exists
    checkpoint = project.state_file()
    backup = checkpoint.with_name(checkpoint.name + ".bak")
    good = checkpoint.read_bytes()
    cut = good[: len(good) // 2]
    checkpoint.write_bytes(cut)  # as a full disk might leave it; a kill cannot (writes are renamed into place)

    head = project.repo.write(files_of(project, {"c000": "c"}, {"c000": "b"}))
    failed = project.gitops("up", "--stack", project.stack, check=False)
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()
    assert any(str(checkpoint) in line and f"cp {backup} {checkpoint}" in line for line in last), failed.stderr
    assert checkpoint.read_bytes() == cut, "never a silent overwrite"

    watch = Watch(project, tmp_path / "watch.log", "--interval", "1")
    try:
        wait_for(lambda: status(project).get("state") == "stalled", 60, "the watcher to stall")
        stalled = status(project)["stalled"]
        assert str(checkpoint) in stalled["reason"] and str(checkpoint) in stalled["files"]
        wait_for(lambda: status(project)["stalled"].get("checks", 0) >= 3, 30, "a few cycles")
        assert watch.count("stalled") == 1 and watch.count("up.start") == 0, "no retry loop while stalled"
        assert checkpoint.read_bytes() == cut
        # The manual step, as the message gives it; the watcher notices and carries on.
        subprocess.run(["cp", str(backup), str(checkpoint)], check=True)
        wait_for(lambda: status(project).get("applied_commit") == head, 120, "the watcher to apply")
        assert status(project).get("stalled") is None
    finally:
        code = watch.stop()
    assert code == 0
    assert_converged(project, {"c000": "c"}, head)


def test_objects_a_killed_run_was_creating_are_adopted_so_a_later_commit_prunes_them(project, tmp_path):
    # Readiness waits on: a LoadBalancer Service waits for an address no controller here gives, so
    # the run is still going while the object already exists, the window a kill can land in. The
    # run saves the state only when it ends, so the state never hears of the Service.
    from gitops.engine.workspace import intent_path
    from gitops.intent import read_intent

    project.write_stack(driftInterval=0, imageMode="off")
    base = {f"c{i:03}": "a" for i in range(3)}
    project.repo.write(files_of(project, base, {}))
    project.gitops("up", "--stack", project.stack, "-q")
    files = files_of(project, base, {})
    files["lb.yaml"] = ("apiVersion: v1\nkind: Service\nmetadata: {name: lb}\n"
                        "spec: {type: LoadBalancer, selector: {app: x}, ports: [{port: 80}]}\n")
    project.repo.write(files)
    run = start(project, "gitops up", tmp_path / "killed.log")
    wait_for(lambda: project.exists("service", "lb", "-n", project.namespace), 120, "the Service created", 0.1)
    kill_session(run)
    assert not [r for r in project.deployment().get("resources", []) if r["urn"].endswith("/lb")]
    intent = read_intent(intent_path(project.root, project.stack, project.env))
    assert intent is not None and [u for u in intent.urns if u.endswith("/lb")], "the run named what it may create"
    # Meanwhile git moved on: the Service is gone from it again.
    head = project.repo.write({"lb.yaml": None})
    result = project.gitops("up", "--stack", project.stack)
    assert "that was killed before it saved the state: 1 object(s)" in result.stdout, result.stdout
    assert not project.exists("service", "lb", "-n", project.namespace), "orphaned in the cluster"
    assert_converged(project, base, head)
    assert not intent_path(project.root, project.stack, project.env).exists()

"""`gitops watch` against the real engine, control plane and git, with the remote served over the
network by `git daemon` on loopback so it can be stopped mid-test (issue 4).

Every watcher runs as a subprocess in its own session and is stopped by PID in teardown."""
from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gitops.engine import stack_dir
from gitops.watch.server import sign

from gitdaemon import GitDaemon, free_port
from sessions import Watch, session_pids, wait_for

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: {value}}}\n"


@pytest.fixture
def daemon(tmp_path):
    base = tmp_path / "served"
    base.mkdir()
    served = GitDaemon(base)
    served.start()
    yield served
    served.stop()


@pytest.fixture
def watchers(project, tmp_path):
    started: list[Watch] = []

    def start(*args: str, env: dict | None = None) -> Watch:
        watch = Watch(project, tmp_path / f"watch-{len(started)}.log", *args, env=env)
        started.append(watch)
        return watch

    yield start
    for watch in started:
        watch.stop(timeout=60)
        watch.kill_session()  # anything its engine run left behind


def status(project) -> dict:
    return project.watch_status()


def value(project, name: str = "a") -> str | None:
    if not project.exists("configmap", name, "-n", project.namespace):
        return None
    return project.kubectl_json("get", "configmap", name, "-n", project.namespace).get("data", {}).get("k")


def namespace_file(ns: str) -> dict[str, str]:
    return {"ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"}


def test_pushed_commits_reach_the_cluster_and_an_outage_is_survived(project, daemon, watchers):
    bare = daemon.base / "config.git"
    project.repo.write({**namespace_file(project.namespace), "a.yaml": CM.format(name="a", value="one")})
    project.repo.push_to(bare)
    project.write_stack(repo=daemon.url("config.git"), skipAwait=True, driftInterval=0)
    watch = watchers("--interval", "1")
    wait_for(lambda: value(project) == "one", what="the first commit applied")

    second = project.repo.write({"a.yaml": CM.format(name="a", value="two")}, "two")
    project.repo.push_to(bare)
    pushed = time.monotonic()
    wait_for(lambda: value(project) == "two", what="the pushed commit applied")
    print(f"push-to-applied latency, poll 1 s: {time.monotonic() - pushed:.1f} s")

    # Ten commits pushed while an `up` runs: exactly one more `up`, at the newest.
    wait_for(lambda: status(project).get("applied_commit") == second, 30, "status updated")
    ups_before = watch.count("up.done")
    project.repo.write({"b.yaml": CM.format(name="b", value="b")}, "b")
    project.repo.push_to(bare)
    wait_for(lambda: watch.count("up.start") > ups_before, 30, "the next up starting")
    for i in range(10):
        head = project.repo.write({"a.yaml": CM.format(name="a", value=f"ten-{i}")}, f"ten-{i}")
    project.repo.push_to(bare)
    during = watch.count("up.done") == ups_before
    wait_for(lambda: value(project) == "ten-9", 60, "the newest of ten commits applied")
    wait_for(lambda: status(project).get("applied_commit") == head, 30, "status updated")
    time.sleep(2)
    after = [e["commit"] for e in watch.events() if e["event"] == "up.done"][ups_before + 1:]
    print(f"ten commits pushed {'during' if during else 'after'} an up; ups after it: {len(after)}")
    assert after == [head]

    # Outage: three commits land on the remote while it is unreachable.
    daemon.stop()
    ups_before = watch.count("up.done")
    for value_ in ("three", "four", "five"):
        newest = project.repo.write({"a.yaml": CM.format(name="a", value=value_)}, value_)
    project.repo.push_to(bare)
    wait_for(lambda: watch.count("cycle.failed") >= 2, 30, "failed cycles during the outage")
    assert watch.process.poll() is None, "the watcher must survive the outage"
    assert value(project) == "ten-9"
    failure = next(e for e in watch.events() if e["event"] == "cycle.failed")
    assert failure["kind"] == "source" and "cannot reach the remote" in failure["msg"]
    assert status(project)["applied_commit"] == head  # the last good state is kept and reported
    assert status(project)["last_error"]["kind"] == "source"

    daemon.start()
    wait_for(lambda: value(project) == "five", 90, "recovery after the remote came back")
    wait_for(lambda: status(project).get("applied_commit") == newest, 30, "status at the newest commit")
    # Supersede: one `up`, at the newest commit, for the three commits.
    time.sleep(3)
    ups = [e for e in watch.events() if e["event"] == "up.done"][ups_before:]
    assert [e["commit"] for e in ups] == [newest]
    assert watch.count("up.start") == watch.count("up.done")

    # Every run left a readable record: summary plus engine events.
    record = Path(ups[-1]["record"])
    summary = json.loads((record / "summary.json").read_text())
    assert summary["commit"] == newest and summary["changes"].get("update") == 1
    events = [json.loads(line) for line in (record / "events.jsonl").read_text().splitlines()]
    assert any(e.get("summary_event") for e in events)
    assert watch.stop() == 0  # SIGTERM ends it cleanly
    assert watch.events()[-1]["event"] == "watch.stop"


def test_drift_is_reported_or_corrected_and_mass_deletion_is_refused(project, watchers):
    ns = project.namespace
    project.repo.write({**namespace_file(ns), "a.yaml": CM.format(name="a", value="one"),
                        "b.yaml": CM.format(name="b", value="b"), "c.yaml": CM.format(name="c", value="c")})
    project.write_stack(skipAwait=True, driftInterval=2, driftMode="report")
    watch = watchers("--interval", "1")
    wait_for(lambda: value(project) == "one", what="first apply")
    kubectl = ["kubectl", "--kubeconfig", str(project.kubeconfig), "-n", ns]
    subprocess.run([*kubectl, "patch", "configmap", "a", "--type", "merge", "-p", '{"data":{"k":"hand"}}'],
                   env=project.env, check=True, capture_output=True)
    found = wait_for(lambda: [e for e in watch.events() if e["event"] == "drift.found"], 60, "drift reported")
    assert found[0]["objects"] == [f"core/ConfigMap:{ns}/a"] and found[0]["mode"] == "report"
    assert value(project) == "hand"  # report mode leaves the cluster alone
    assert watch.stop() == 0

    project.write_stack(skipAwait=True, driftInterval=2, driftMode="correct")
    watch = watchers("--interval", "1")
    wait_for(lambda: value(project) == "one", 90, "the hand edit reverted by a drift check")
    assert any(e["event"] == "drift.found" and e["mode"] == "correct" for e in watch.events())

    # Emptying the folder is refused as empty; removing 3 of its 4 objects trips the deletion guard.
    rv = project.kubectl_json("get", "configmap", "b", "-n", ns)["metadata"]["resourceVersion"]
    project.repo.write({"ns.yaml": None, "a.yaml": None, "b.yaml": None, "c.yaml": None}, "oops, emptied")
    # A deterministic failure: stalled, not retried, until the commit or the settings change.
    empty = wait_for(lambda: [e for e in watch.events() if e["event"] == "stalled" and e["kind"] == "manifest"],
                     60, "the empty commit refused")
    assert "empty desired state would delete everything" in empty[0]["msg"]
    project.repo.write({"ns.yaml": namespace_file(ns)["ns.yaml"]}, "oops, three of four gone")
    refused = wait_for(lambda: [e for e in watch.events() if e["event"] == "stalled" and e["kind"] == "guard"],
                       60, "the guard refusing")
    assert "3 of 4 objects (75%) would be deleted" in refused[0]["msg"]
    assert "gitops:maxDeletePercent 50%" in refused[0]["msg"]
    assert watch.process.poll() is None
    assert status(project)["last_error"]["kind"] == "guard" and status(project)["stalled"]["kind"] == "guard"
    assert project.kubectl_json("get", "configmap", "b", "-n", ns)["metadata"]["resourceVersion"] == rv
    assert value(project) == "one"

    # A broken commit is reported and applies nothing; the loop goes on and applies the fix.
    project.repo.write({**namespace_file(ns), "a.yaml": CM.format(name="a", value="broken"),
                        "broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: [\n"}, "half broken")
    bad = wait_for(lambda: [e for e in watch.events() if e["event"] == "stalled" and e["kind"] == "manifest"
                            and "broken.yaml:" in e["msg"]], 60, "the manifest error")
    assert "broken.yaml:" in bad[0]["msg"] and "nothing was applied" in bad[0]["msg"]
    assert value(project) == "one"
    fixed = project.repo.write({"broken.yaml": None, "b.yaml": CM.format(name="b", value="b"),
                                "c.yaml": CM.format(name="c", value="c")}, "fixed")
    wait_for(lambda: value(project) == "broken", 60, "the fixed commit applied")  # 'broken' is a's value now
    wait_for(lambda: status(project).get("applied_commit") == fixed, 30, "status")
    assert watch.process.poll() is None


def test_once_exit_codes(project):
    project.repo.write({**namespace_file(project.namespace), "a.yaml": CM.format(name="a", value="one")})
    project.write_stack(skipAwait=True, driftInterval=0)
    once = ("watch", "--stack", project.stack, "--once")
    assert project.gitops(*once, check=False).returncode == 2  # applied
    assert value(project) == "one"
    quiet = project.gitops(*once, check=False)
    assert quiet.returncode == 0, quiet.stderr  # nothing to do: no `up` at all
    assert "up.start" not in quiet.stderr, quiet.stderr
    project.repo.write({"a.yaml": CM.format(name="a", value="two")}, "two")
    assert project.gitops(*once, check=False).returncode == 2
    assert value(project) == "two"
    project.repo.write({"bad.yaml": "kind: ConfigMap\n"}, "bad")
    failed = project.gitops(*once, check=False)
    assert failed.returncode == 1 and "bad.yaml:" in failed.stderr


def test_webhook_needs_a_valid_signature_and_triggers_a_cycle(project, watchers):
    secret = "hook-secret"
    port = free_port()
    token = "s3cr3t-watch-token"
    project.repo.write({**namespace_file(project.namespace), "a.yaml": CM.format(name="a", value="one"),
                        "s.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
                                  f"stringData: {{token: {token}}}\n"})
    project.write_stack(skipAwait=True, driftInterval=0)
    # An hour between polls: only the webhook can make it look again.
    watch = watchers("--interval", "3600", "--listen", f"127.0.0.1:{port}", env={"GITOPS_WEBHOOK_SECRET": secret})
    wait_for(lambda: value(project) == "one", what="first apply")
    base = f"http://127.0.0.1:{port}"

    def post(headers: dict) -> int:
        request = urllib.request.Request(base + "/hooks/git", data=b'{"ref":"refs/heads/main"}', method="POST",
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    wait_for(lambda: status(project).get("state") == "idle", 30, "watcher idle")
    head = project.repo.write({"a.yaml": CM.format(name="a", value="two")}, "two")
    body = b'{"ref":"refs/heads/main"}'
    assert post({}) == 401
    assert post({"X-Hub-Signature-256": sign(b"wrong", body)}) == 401
    time.sleep(3)
    assert value(project) == "one" and watch.count("up.start") == 1

    sent = time.monotonic()
    assert post({"X-Hub-Signature-256": sign(secret.encode(), body)}) == 202
    wait_for(lambda: value(project) == "two", 60, "the webhook's cycle applying the commit")
    print(f"webhook-to-applied latency: {time.monotonic() - sent:.1f} s")

    with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
        assert r.read() == b"ok\n"
    wait_for(lambda: status(project).get("applied_commit") == head, 30, "status")
    with urllib.request.urlopen(base + "/status", timeout=5) as r:
        served = json.loads(r.read())
    assert served["applied_commit"] == head and served["last_result"]["result"] == "ok"
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert 'gitops_watch_webhooks_total{result="rejected"} 2' in metrics
    assert 'gitops_watch_webhooks_total{result="accepted"} 1' in metrics
    assert "gitops_watch_up_duration_seconds_count 2" in metrics
    assert 'gitops_watch_changes_total{op="update"} 1' in metrics
    # Neither the webhook secret nor a Secret's value reaches a log, the status or a run record.
    written = [watch.log] + [f for f in stack_dir(project.root, project.stack, project.env).rglob("*") if f.is_file()]
    for path in written:
        text = path.read_text(errors="replace")
        for form in (secret, token, base64.b64encode(token.encode()).decode()):
            assert form not in text, f"{form} in {path}"
    stored = project.kubectl_json("get", "secret", "s", "-n", project.namespace)
    assert base64.b64decode(stored["data"]["token"]).decode() == token


def test_one_writer_per_stack(project, watchers):
    project.repo.write({**namespace_file(project.namespace), "a.yaml": CM.format(name="a", value="one")})
    project.write_stack(skipAwait=True, driftInterval=0)
    first = watchers("--interval", "1")
    wait_for(lambda: value(project) == "one", what="first apply")

    refused = watchers("--interval", "1", "--lock-timeout", "0")
    assert refused.process.wait(60) == 1
    busy = [e for e in refused.events() if e["event"] == "lock.busy"]
    assert busy and f"pid {first.process.pid}" in busy[0]["msg"]

    waiting = watchers("--interval", "1")
    wait_for(lambda: waiting.count("lock.wait") == 1, 60, "the second watcher waiting")
    project.repo.write({"a.yaml": CM.format(name="a", value="two")}, "two")
    wait_for(lambda: value(project) == "two", 60, "the first watcher applying")
    assert waiting.count("up.start") == 0
    assert first.stop() == 0
    # The waiting one takes over; a new commit is now its to apply.
    wait_for(lambda: waiting.count("watch.start") == 1, 60, "takeover")
    third = project.repo.write({"a.yaml": CM.format(name="a", value="three")}, "three")
    wait_for(lambda: value(project) == "three", 60, "the second watcher applying")
    wait_for(lambda: status(project).get("applied_commit") == third, 30, "the run recorded")
    # SIGTERM ends a watcher that is still waiting for the lock, at once and cleanly.
    late = watchers("--interval", "1")
    wait_for(lambda: late.count("lock.wait") == 1, 60, "a third watcher waiting")
    assert late.stop(timeout=10) == 0
    records = stack_dir(project.root, project.stack, project.env) / "runs"
    spans = sorted((s["started_epoch"], s["finished_epoch"]) for s in
                   (json.loads(p.read_text()) for p in records.glob("*-up-*/summary.json")))
    assert len(spans) >= 3
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), f"overlapping up runs: {spans}"


def child_pids(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def test_ctrl_c_in_a_terminal_finishes_the_current_run_then_stops(project, tmp_path):
    import fcntl
    import pty
    import termios

    ns = project.namespace
    project.repo.write({**namespace_file(ns), "a.yaml": CM.format(name="a", value="one")})
    project.write_stack(driftInterval=0)  # readiness waits on: the Service below keeps `up` busy for seconds
    master, slave = pty.openpty()

    def take_terminal() -> None:  # runs in the new session: the pty becomes its controlling terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    log = tmp_path / "tty.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gitops", "--project-dir", str(project.root), "watch", "--stack", project.stack,
         "--interval", "1", "--log-format", "json"],
        env=project.env, stdin=slave, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=take_terminal)
    os.close(slave)
    try:
        wait_for(lambda: value(project) == "one", what="the first commit applied")
        second = project.repo.write({"a.yaml": CM.format(name="a", value="two"),
                                     "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                                                 "spec: {selector: {app: web}, ports: [{port: 80}]}\n"}, "service")
        wait_for(lambda: (status(project).get("running") or {}).get("commit") == second, what="the second up running")
        os.write(master, b"\x03")  # Ctrl-C, through the terminal's line discipline, to its foreground group
        assert process.wait(180) == 0, log.read_text()[-2000:]
        final = status(project)
        assert final["applied_commit"] == second, final
        assert value(project) == "two" and project.exists("service", "web", "-n", ns)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(120)
        for pid in [*child_pids(process.pid), process.pid]:
            for member in session_pids(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member, signal.SIGKILL)
        os.close(master)

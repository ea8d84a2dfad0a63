"""The watcher's cycle with a fake engine, a fake config repo and a fake clock: supersede, backoff,
stalls, the deletion guard, drift, image scan timing, and issue 10's three bugs. No tool runs."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest

from gitops.engine import Applied, RefreshResult, RunPlan, RunResult
from gitops.engine.recover import Recovery
from gitops.errors import EngineError, SourceError, StateDamagedError
from gitops.images.scan import ScanResult
from gitops.kube.dryrun import RejectedError, Rejection, Verdict
from gitops.source.git import SourceFile
from gitops.state.leftovers import Damage
from gitops.watch.loop import CycleOutcome, Watcher, WatchOptions
from gitops.watch.ports import Ports
from gitops.watch.record import Log

STACK = "s"


def cm(name: str, value: str = "v") -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: {value}}}\n"


class FakeSource:
    """A config repo: commits by id, a moving head, and an outage switch."""

    def __init__(self) -> None:
        self.label = "fake-repo"
        self.commits: dict[str, dict[str, str]] = {}
        self.head = ""
        self.down = False
        self.resolves = 0

    def commit(self, files: dict[str, str]) -> str:
        sha = f"{len(self.commits) + 1:040x}"
        self.commits[sha] = files
        self.head = sha
        return sha

    def resolve(self, ref: str) -> str:
        self.resolves += 1
        if self.down:
            raise SourceError("cannot reach the remote", repo=self.label, ref=ref)
        return self.head

    def read(self, commit: str, path: str = ".") -> list[SourceFile]:
        return [SourceFile(p, t.encode()) for p, t in sorted(self.commits[commit].items())]

    def tree(self, commit: str):
        raise AssertionError("plain manifests need no tree")  # only kustomize folders do


class FakeEngine:
    def __init__(self, source: FakeSource) -> None:
        self.source = source
        self.commit: str | None = None
        self.subjects: tuple[str, ...] = ()
        self.ups: list[str] = []
        self.fail_next: list[str] = []
        """Messages: each makes one `up` fail."""
        self.partial_on_failure: tuple[str, ...] | None = None
        self.during_up = None
        self.drifted: tuple[str, ...] = ()
        self.refreshes: list[bool] = []
        self.damaged: StateDamagedError | None = None
        self.turns = 0

    @contextmanager
    def turn(self, *, deep=False, cancelled=lambda: False, on_wait=None):
        self.turns += 1
        if self.damaged is not None:
            raise self.damaged
        yield Recovery()

    def deep_recover(self) -> Recovery:
        if self.damaged is not None:
            raise self.damaged
        return Recovery()

    def applied(self) -> Applied:
        return Applied(self.commit, self.subjects)

    def plan(self, desired, settings) -> RunPlan:
        return RunPlan(started=0.0)

    def up(self, commit, *, program_env=None, on_event=None, plan=None) -> RunResult:
        self.ups.append(commit)
        if self.during_up:
            self.during_up()
        subjects = tuple(sorted(f"ConfigMap/ns/{p.removesuffix('.yaml')}" for p in self.source.commits[commit]))
        if self.fail_next:
            if self.partial_on_failure is not None:
                self.subjects = self.partial_on_failure
            raise EngineError(self.fail_next.pop(0))
        changed = commit != self.commit
        self.commit, self.subjects = commit, subjects
        return RunResult(STACK, commit, {"update": 1} if changed else {"same": len(subjects)},
                         {"commit": commit, "subjects": list(subjects)}, 0.1)

    def refresh(self, *, preview_only, on_event=None) -> RefreshResult:
        self.refreshes.append(preview_only)
        return RefreshResult(self.drifted, {}, 0.1)


class FakeScanner:
    def __init__(self) -> None:
        self.scans: list[str] = []
        self.requests_made: dict[str, int] = {}

    def scan(self, files, commit, settings, where, source=None) -> ScanResult:
        self.scans.append(commit)
        return ScanResult(commit, (), {})


class World:
    def __init__(self, root: Path, **settings) -> None:
        self.root = root
        (root / "stacks").mkdir(parents=True)
        (root / "Pulumi.yaml").write_text("name: gitops\n")
        self.now = 1000.0
        self.source = FakeSource()
        self.engine = FakeEngine(self.source)
        self.scanner = FakeScanner()
        self.write_settings(**settings)
        env = {"PULUMI_BACKEND_URL": f"file://{root / 'state'}"}
        self.rejected: dict[str, str] = {}
        """Object name -> the API server's refusal, in the dry run."""
        self.verdicts: list[str] = []
        ports = Ports(engine=self.engine, source=lambda repo: self.source, scanner=lambda s: self.scanner,
                      write_back=lambda *a: pytest.fail("no write-back expected"), verdict=self.verdict,
                      clock=lambda: self.now)
        self.log_lines: list[dict] = []
        self.watcher = Watcher(WatchOptions(root, STACK, interval=10), _ListLog(self.log_lines), env=env, ports=ports,
                               clock=lambda: self.now)

    def verdict(self, cluster, manifests, commit) -> Verdict:
        self.verdicts.append(commit)
        refused = [Rejection(m, self.rejected[m.id.name]) for m in manifests if m.id.name in self.rejected]
        if refused:
            raise RejectedError(commit, refused)
        return Verdict(len(manifests), (), (), 0.01)

    def write_settings(self, **settings) -> None:
        config = {"gitops:repo": "repo", "gitops:namespace": "ns", "gitops:driftInterval": 0,
                  "gitops:imageMode": "off", **{f"gitops:{k}": v for k, v in settings.items()}}
        (self.root / "stacks" / f"Pulumi.{STACK}.yaml").write_text(json.dumps({"config": config}))

    def cycle(self, after: float = 0.0) -> tuple[CycleOutcome, float]:
        self.now += after
        return self.watcher.cycle()

    def status(self) -> dict:
        return self.watcher.status()

    def events(self, name: str) -> list[dict]:
        return [e for e in self.log_lines if e["event"] == name]


class _ListLog(Log):
    def __init__(self, into: list[dict]) -> None:
        super().__init__()
        self.into = into

    def __call__(self, event: str, message: str = "", level: str = "info", **fields) -> None:
        self.into.append({"event": event, "msg": message, "level": level, **fields})


@pytest.fixture
def world(tmp_path):
    return World(tmp_path / "project")


def ten(value: str = "v") -> dict[str, str]:
    return {f"c{i}.yaml": cm(f"c{i}", value) for i in range(10)}


def test_the_first_cycle_starts_then_deploys_and_then_rests(world):
    head = world.source.commit(ten())
    assert world.cycle() == (CycleOutcome.CHANGED, 10)
    assert world.engine.ups == [head]
    status = world.status()
    assert status["applied_commit"] == head and status["last_error"] is None
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": True, "Reconciling": False,
                                                                      "Stalled": False}
    assert world.cycle(10)[0] is CycleOutcome.UNCHANGED
    assert world.engine.ups == [head]


def test_a_restarted_watcher_does_not_apply_what_is_there(world):
    head = world.source.commit(ten())
    world.engine.commit = head
    world.engine.subjects = tuple(f"ConfigMap/ns/c{i}" for i in range(10))
    world.watcher._previous = {}  # no earlier status: the settings in force are not known
    world.cycle()
    assert world.engine.ups == [head]  # the settings fingerprint is unknown: applied once to be sure
    fresh = World(world.root.parent / "again")
    fresh.source.commit(ten())
    fresh.engine.commit, fresh.engine.subjects = fresh.source.head, ("x",)
    fresh.watcher._previous = {"applied_commit": fresh.source.head,
                               "applied_fingerprint": fresh.watcher._observe(0)[0].fingerprint}
    assert fresh.cycle()[0] is CycleOutcome.UNCHANGED and fresh.engine.ups == []


def test_commits_that_arrive_during_an_up_are_superseded_by_the_newest(world):
    world.source.commit(ten("a"))
    world.cycle()
    newest = []

    def three_commits() -> None:
        world.engine.during_up = None
        for value in ("b", "c", "d"):
            newest.append(world.source.commit(ten(value)))

    world.engine.during_up = three_commits
    world.source.commit(ten("x"))
    world.cycle(10)
    world.cycle(10)
    world.cycle(10)
    assert world.engine.ups[2:] == [newest[-1]]


def test_engine_failures_back_off_and_a_new_commit_is_tried_at_once(world):
    world.source.commit(ten("a"))
    world.cycle()
    world.engine.fail_next = ["cluster unreachable", "cluster unreachable"]
    bad = world.source.commit(ten("b"))
    assert world.cycle(10) == (CycleOutcome.ERROR, 2)
    assert world.cycle(1)[0] is CycleOutcome.UNCHANGED  # in backoff: no up
    assert world.engine.ups.count(bad) == 1
    assert world.cycle(1) == (CycleOutcome.ERROR, 4)  # retried after 2 s, failed again: 4 s now
    assert world.engine.ups.count(bad) == 2
    assert world.status()["last_error"]["kind"] == "engine"
    newer = world.source.commit(ten("c"))
    assert world.cycle(1)[0] is CycleOutcome.CHANGED  # a new commit does not wait out the backoff
    assert world.engine.ups[-1] == newer and world.status()["failures"] == 0


def test_a_bad_commit_stalls_without_retrying_until_the_next_commit(world):
    good = world.source.commit(ten())
    world.cycle()
    world.source.commit({**ten(), "broken.yaml": "kind: ConfigMap\nmetadata: {name: x}\n"})
    assert world.cycle(10)[0] is CycleOutcome.ERROR
    status = world.status()
    assert status["state"] == "stalled" and status["stalled"]["kind"] == "manifest"
    assert "broken.yaml:1" in status["stalled"]["reason"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Stalled"] is True
    for _ in range(5):
        assert world.cycle(600) == (CycleOutcome.ERROR, 10)  # an hour on: still only the interval, no backoff
    assert world.engine.ups == [good] and len(world.events("stalled")) == 1
    assert world.status()["stalled"]["checks"] == 5
    assert world.status()["applied_commit"] == good  # the last good state is kept
    fixed = world.source.commit(ten("fixed"))
    assert world.cycle(1)[0] is CycleOutcome.CHANGED
    assert world.engine.ups[-1] == fixed and world.status()["stalled"] is None


def test_the_deletion_guard_stalls_a_mass_delete_until_allowed(world):
    world.source.commit(ten())
    world.cycle()
    emptied = world.source.commit({"c0.yaml": cm("c0")})
    world.cycle(10)
    assert world.status()["stalled"]["kind"] == "guard"
    assert "9 of 10 objects (90%) would be deleted" in world.status()["stalled"]["reason"]
    world.cycle(10)
    assert emptied not in world.engine.ups
    world.write_settings(allowMassDelete=True)  # the settings changed: the stall is over
    assert world.cycle(1)[0] is CycleOutcome.CHANGED and world.engine.ups[-1] == emptied


def test_after_a_failed_up_the_guard_compares_with_what_the_stack_holds_now(world):
    # Issue 10, bug 2: the guard kept comparing with the subjects from before the failed `up`.
    world.source.commit({f"c{i}.yaml": cm(f"c{i}") for i in range(4)})
    world.cycle()
    world.engine.fail_next = ["half applied"]
    twenty = {f"c{i}.yaml": cm(f"c{i}") for i in range(20)}
    world.engine.partial_on_failure = tuple(sorted(f"ConfigMap/ns/c{i}" for i in range(20)))
    world.source.commit(twenty)
    assert world.cycle(10)[0] is CycleOutcome.ERROR
    back = world.source.commit({f"c{i}.yaml": cm(f"c{i}") for i in range(4)})  # deletes 16 of the 20 it holds
    world.cycle(10)
    assert back not in world.engine.ups
    assert world.status()["stalled"]["kind"] == "guard"
    assert "16 of 20 objects" in world.status()["stalled"]["reason"]


def test_a_bad_commit_message_template_stalls_on_the_settings_instead_of_crashing(world):
    # Issue 10, bug 1: `{oops}` passed validation and killed the watcher at the first accepted tag.
    world.source.commit(ten())
    world.write_settings(imageMode="commit", imageCommitMessage="{oops}")
    assert world.cycle()[0] is CycleOutcome.ERROR
    stalled = world.status()["stalled"]
    assert stalled["kind"] == "settings" and "Pulumi.s.yaml" in stalled["reason"] and "{oops}" in stalled["reason"]
    assert world.engine.ups == [] and world.scanner.scans == []
    world.write_settings(imageMode="commit", imageCommitMessage="{summary}")
    assert world.cycle(1)[0] is CycleOutcome.CHANGED


def test_damaged_state_stalls_until_its_file_changes(world, tmp_path):
    world.source.commit(ten())
    checkpoint = tmp_path / "s.json"
    checkpoint.write_text("{")
    world.engine.damaged = StateDamagedError(STACK, [Damage(checkpoint, "cut short", "cp s.json.bak s.json")])
    assert world.cycle()[0] is CycleOutcome.ERROR
    status = world.status()
    assert status["state"] == "stalled" and status["stalled"]["files"] == [str(checkpoint)]
    turns = world.engine.turns
    for _ in range(3):
        world.cycle(60)
    assert world.engine.turns == turns  # not even the engine's turn is taken while nothing changed
    world.engine.damaged = None
    checkpoint.write_text('{"checkpoint": {}}')  # the manual step
    assert world.cycle(1)[0] is CycleOutcome.CHANGED


def test_a_source_outage_is_retried_with_backoff_and_the_last_good_state_kept(world):
    good = world.source.commit(ten())
    world.cycle()
    world.source.down = True
    waits = [world.cycle(w)[1] for w in (10, 2, 4, 8)]
    assert waits == [2, 4, 8, 16]
    assert world.status()["applied_commit"] == good and world.status()["last_error"]["kind"] == "source"
    world.source.down = False
    newer = world.source.commit(ten("b"))
    assert world.cycle(16)[0] is CycleOutcome.CHANGED and world.engine.ups[-1] == newer


def test_drift_is_reported_or_corrected(tmp_path):
    world = World(tmp_path / "p", driftInterval=60, driftMode="report")
    head = world.source.commit(ten())
    world.cycle()
    world.engine.drifted = ("core/ConfigMap:ns/c1",)
    assert world.cycle(60)[0] is CycleOutcome.UNCHANGED
    assert world.engine.refreshes == [True] and world.engine.ups == [head]
    assert world.events("drift.found")[0]["objects"] == ["core/ConfigMap:ns/c1"]
    world.write_settings(driftInterval=60, driftMode="correct")
    world.cycle(1)  # the settings changed: applied
    world.cycle(60)
    assert world.engine.refreshes == [True, False] and world.engine.ups.count(head) == 3


def test_image_scans_follow_their_interval_and_the_registry_webhook(tmp_path):
    world = World(tmp_path / "p", imageMode="commit", imageInterval=30)
    world.source.commit(ten())
    world.cycle()
    assert len(world.scanner.scans) == 1
    world.cycle(10)
    world.cycle(10)
    assert len(world.scanner.scans) == 1
    world.cycle(10)  # 30 s after the first scan
    assert len(world.scanner.scans) == 2
    world.watcher.trigger_images()
    world.cycle(1)
    assert len(world.scanner.scans) == 3
    world.write_settings(imageMode="off")
    world.cycle(100)
    assert len(world.scanner.scans) == 3


def test_the_status_file_is_what_status_serves(world):
    world.source.commit(ten())
    world.cycle()
    written = json.loads((world.watcher.dir / "status.json").read_text())
    assert written == world.status()


def test_a_commit_the_api_server_rejects_is_not_applied_and_stalls_with_the_reason(world):
    good = world.source.commit(ten())
    world.cycle()
    world.rejected = {"c3": 'Service "c3" is invalid: spec.ports[0].port: Invalid value: 99999'}
    bad = world.source.commit(ten("b"))
    assert world.cycle(10)[0] is CycleOutcome.ERROR
    assert world.engine.ups == [good], "nothing of the rejected commit reaches the engine"
    stalled = world.status()["stalled"]
    assert stalled["kind"] == "rejected"
    assert "ConfigMap/ns/c3 (c3.yaml:1): Service \"c3\" is invalid" in stalled["reason"]
    assert world.events("stalled")[0]["kind"] == "rejected"
    world.cycle(600)
    assert world.verdicts.count(bad) == 1, "not asked again until the commit changes"
    world.rejected = {}
    fixed = world.source.commit(ten("c"))
    assert world.cycle(1)[0] is CycleOutcome.CHANGED and world.engine.ups[-1] == fixed


def test_an_empty_desired_state_is_refused_unless_allowed(world):
    world.source.commit(ten())
    world.cycle()
    emptied = world.source.commit({"README.md": "nothing here"})
    world.cycle(10)
    assert world.status()["stalled"]["kind"] == "manifest" and "no objects" in world.status()["stalled"]["reason"]
    world.write_settings(allowEmpty=True, allowMassDelete=True)
    assert world.cycle(1)[0] is CycleOutcome.CHANGED and world.engine.ups[-1] == emptied

"""The watcher's scheduler, with a fake clock: every case is (state, observation) -> what is due."""
import pytest

from gitops.watch.decide import (
    Action,
    Failure,
    Observation,
    Policy,
    WatchState,
    decide,
    failed,
    next_wait,
    registry_hook,
    scanned,
    stalled,
    started,
    succeeded,
    webhook,
)

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
FP, FP2 = "fp1", "fp2"
POLICY = Policy(interval=10, drift_interval=60, backoff_base=2, backoff_cap=30)
IMAGES = Policy(interval=10, drift_interval=None, image_interval=30, images=True)
APPLIED = WatchState(started=True, applied_commit=A, applied_fingerprint=FP, last_drift_check=100.0)


def obs(now: float, head: str | None = A, fingerprint: str = FP, **kw) -> Observation:
    return Observation(now=now, fingerprint=fingerprint, head=head, **kw)


@pytest.mark.parametrize("state,seen,action,reason", [
    (WatchState(), obs(0), Action.START, "starting"),
    (WatchState(started=True), obs(0), Action.DEPLOY, "first run"),
    (APPLIED, obs(110), Action.NOTHING, "up to date"),
    (APPLIED, obs(110, B), Action.DEPLOY, "new commit"),
    (APPLIED, obs(110, fingerprint=FP2), Action.DEPLOY, "settings changed"),
    (APPLIED, obs(160), Action.DRIFT, "drift check due"),
    (APPLIED, obs(159.9), Action.NOTHING, "up to date"),
    # A new commit wins over a due drift check: `up` corrects drift too.
    (APPLIED, obs(500, C), Action.DEPLOY, "new commit"),
    (APPLIED, obs(110, None, source_error="down"), Action.WAIT, "source unavailable"),
    (WatchState(started=True, applied_commit=A, applied_fingerprint=FP), obs(0), Action.DRIFT, "drift"),
    (APPLIED, obs(110, settings_error="stacks/Pulumi.s.yaml: bad"), Action.STALLED, "bad"),
])
def test_decision_matrix(state, seen, action, reason):
    decision = decide(state, seen, POLICY)
    assert decision.action == action
    assert reason in decision.reason


def test_no_drift_checks_when_off():
    policy = Policy(interval=10, drift_interval=None)
    assert decide(APPLIED, obs(1e9), policy).action == Action.NOTHING


def test_supersede_applies_only_the_newest_commit_once():
    """B, C and D arrive while the up of A runs: the next cycle sees D only, applies it, then rests."""
    state = succeeded(started(WatchState(), None, None), Action.DEPLOY, obs(0))
    ups = []
    for i in range(3):
        seen = obs(1 + i, D)
        decision = decide(state, seen, POLICY)
        if decision.action == Action.DEPLOY:
            ups.append(seen.head)
            state = succeeded(state, decision.action, seen)
    assert ups == [D]


@pytest.mark.parametrize("failures,expected", [(0, 0), (1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (50, 30)])
def test_backoff_is_exponential_and_capped(failures, expected):
    assert POLICY.backoff(failures) == expected


def test_a_failed_commit_is_retried_only_after_backoff_but_a_new_commit_at_once():
    state = failed(APPLIED, obs(110, B), POLICY)
    assert (state.failures, state.retry_at, state.applied_commit) == (1, 112, A)  # last good state kept
    assert decide(state, obs(111, B), POLICY).action == Action.WAIT
    assert decide(state, obs(111, B), POLICY).wait == pytest.approx(1)
    assert decide(state, obs(112, B), POLICY).action == Action.DEPLOY
    assert decide(state, obs(111, C), POLICY).action == Action.DEPLOY
    state = failed(state, obs(112, B), POLICY)
    assert (state.failures, state.retry_at) == (2, 116)
    state = succeeded(state, Action.DEPLOY, obs(120, C))
    assert (state.failures, state.retry_at, state.applied_commit) == (0, None, C)


def test_source_outage_backs_off_and_recovers():
    state = APPLIED
    waits = []
    for now in (110, 112, 116, 124):
        seen = obs(now, None, source_error="cannot reach the remote")
        decision = decide(state, seen, POLICY)
        assert decision.failure is Failure.SOURCE
        waits.append(decision.wait)
        state = failed(state, seen, POLICY)
    assert waits == [2, 4, 8, 16]
    assert state.applied_commit == A
    # Back, and nothing moved: wait out the backoff, then rest.
    assert decide(state, obs(125), POLICY).action == Action.WAIT
    assert decide(state, obs(140), POLICY).action in (Action.NOTHING, Action.DRIFT)
    # Back with a new commit: applied at once.
    assert decide(state, obs(125, B), POLICY).action == Action.DEPLOY


def test_webhook_cuts_a_backoff_short():
    state = failed(APPLIED, obs(110, B), POLICY)
    assert decide(state, obs(111, B), POLICY).action == Action.WAIT
    assert decide(webhook(state), obs(111, B), POLICY).action == Action.DEPLOY


def test_failed_drift_check_is_not_retried_in_a_tight_loop():
    state = failed(APPLIED, obs(200), POLICY, during_drift=True)
    assert state.last_drift_check == 200
    assert decide(state, obs(201), POLICY).action == Action.WAIT
    assert decide(state, obs(203), POLICY).action == Action.NOTHING


@pytest.mark.parametrize("failure", [Failure.MANIFEST, Failure.GUARD])
def test_a_bad_commit_stalls_until_the_commit_or_the_settings_change(failure):
    state = stalled(APPLIED, obs(110, B), failure, "2 problems in the manifests")
    for now in (111, 500, 10_000):  # no backoff clock: stuck, not retrying
        decision = decide(state, obs(now, B), POLICY)
        assert (decision.action, decision.reason) == (Action.STALLED, "2 problems in the manifests")
    assert decide(state, obs(111, C), POLICY).action == Action.DEPLOY
    assert decide(state, obs(111, B, fingerprint=FP2), POLICY).action == Action.DEPLOY
    # The applied commit is still what is reported and compared against.
    assert state.applied_commit == A


def test_damaged_state_stalls_until_the_files_change():
    state = stalled(APPLIED, obs(110, B, damage="s.json:10:1"), Failure.STATE, "damaged")
    assert decide(state, obs(111, B, damage="s.json:10:1"), POLICY).action == Action.STALLED
    assert decide(state, obs(111, C, damage="s.json:10:1"), POLICY).action == Action.STALLED  # a new commit cannot help
    assert decide(state, obs(111, B, damage="s.json:20:2"), POLICY).action == Action.DEPLOY


def test_bad_settings_stall_until_the_stack_file_changes():
    state = stalled(APPLIED, obs(110, settings_error="bad"), Failure.SETTINGS, "bad")
    assert decide(state, obs(111, settings_error="bad"), POLICY).action == Action.STALLED
    assert decide(state, obs(111, fingerprint=FP2), POLICY).action == Action.DEPLOY  # the fixed file is applied


def test_image_scans_keep_their_own_interval_and_a_registry_hook_scans_at_once():
    state = APPLIED
    assert decide(state, obs(110), IMAGES).scan  # never scanned: at the first chance
    state = scanned(state, 110, IMAGES)
    assert state.next_scan == 140
    assert not decide(state, obs(139), IMAGES).scan
    assert next_wait(state, 135, IMAGES) == 5
    assert decide(state, obs(140), IMAGES).scan
    assert decide(registry_hook(state), obs(120), IMAGES).scan
    assert not decide(registry_hook(state), obs(120), POLICY).scan  # image automation off
    assert not decide(scanned(registry_hook(state), 120, IMAGES), obs(121), IMAGES).scan
    # A scan can ride along with a deploy, and with a backoff.
    assert decide(state, obs(140, B), IMAGES).scan


@pytest.mark.parametrize("last,now,expected", [(100, 110, 10), (100, 155, 5), (100, 170, 0), (None, 0, 10)])
def test_next_wait_is_shortened_for_a_due_drift_check(last, now, expected):
    assert next_wait(WatchState(applied_commit=A, last_drift_check=last), now, POLICY) == expected

"""The watcher's decisions, with a fake clock: every case is (state, observation) -> action."""
import pytest

from gitops.watch.decide import Action, Observation, Policy, WatchState, decide, failed, next_wait, succeeded, webhook

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
FP, FP2 = "fp1", "fp2"
POLICY = Policy(interval=10, drift_interval=60, backoff_base=2, backoff_cap=30)
APPLIED = WatchState(applied_commit=A, applied_fingerprint=FP, last_drift_check=100.0)


@pytest.mark.parametrize("state,obs,action,commit,reason", [
    (WatchState(), Observation(now=0, fingerprint=FP, head=A), Action.UP, A, "first run"),
    (APPLIED, Observation(now=110, fingerprint=FP, head=A), Action.NOTHING, None, "up to date"),
    (APPLIED, Observation(now=110, fingerprint=FP, head=B), Action.UP, B, "new commit"),
    (APPLIED, Observation(now=110, fingerprint=FP2, head=A), Action.UP, A, "settings changed"),
    (APPLIED, Observation(now=160, fingerprint=FP, head=A), Action.DRIFT, A, "drift check due"),
    (APPLIED, Observation(now=159.9, fingerprint=FP, head=A), Action.NOTHING, None, "up to date"),
    # A new commit wins over a due drift check: `up` corrects drift too.
    (APPLIED, Observation(now=500, fingerprint=FP, head=C), Action.UP, C, "new commit"),
    (APPLIED, Observation(now=110, fingerprint=FP, source_error="down"), Action.WAIT, None, "source unavailable"),
    (WatchState(applied_commit=A, applied_fingerprint=FP), Observation(now=0, fingerprint=FP, head=A), Action.DRIFT, A, "drift"),
])
def test_decision_matrix(state, obs, action, commit, reason):
    decision = decide(state, obs, POLICY)
    assert decision.action == action
    assert decision.commit == commit
    assert reason in decision.reason


def test_no_drift_checks_when_off():
    policy = Policy(interval=10, drift_interval=None)
    assert decide(WatchState(applied_commit=A, applied_fingerprint=FP), Observation(now=1e9, fingerprint=FP, head=A), policy).action == Action.NOTHING


def test_supersede_applies_only_the_newest_commit_once():
    """B, C and D arrive while the up of A runs: the next cycle sees D only, applies it, then rests."""
    state = succeeded(WatchState(), Action.UP, A, FP, now=0)
    seen_heads, ups = [D, D, D], []
    for i, head in enumerate(seen_heads):
        decision = decide(state, Observation(now=1 + i, fingerprint=FP, head=head), POLICY)
        if decision.action == Action.UP:
            ups.append(decision.commit)
            state = succeeded(state, decision.action, decision.commit, FP, now=1 + i)
    assert ups == [D]


@pytest.mark.parametrize("failures,expected", [(0, 0), (1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (50, 30)])
def test_backoff_is_exponential_and_capped(failures, expected):
    assert POLICY.backoff(failures) == expected


def test_a_failed_commit_is_retried_only_after_backoff_but_a_new_commit_at_once():
    obs = Observation(now=110, fingerprint=FP, head=B)
    state = failed(APPLIED, obs, POLICY)
    assert (state.failures, state.retry_at, state.applied_commit) == (1, 112, A)  # last good state kept
    assert decide(state, Observation(now=111, fingerprint=FP, head=B), POLICY).action == Action.WAIT
    assert decide(state, Observation(now=111, fingerprint=FP, head=B), POLICY).wait == pytest.approx(1)
    assert decide(state, Observation(now=112, fingerprint=FP, head=B), POLICY).action == Action.UP
    fixed = decide(state, Observation(now=111, fingerprint=FP, head=C), POLICY)
    assert (fixed.action, fixed.commit) == (Action.UP, C)
    state = failed(state, Observation(now=112, fingerprint=FP, head=B), POLICY)
    assert (state.failures, state.retry_at) == (2, 116)
    state = succeeded(state, Action.UP, C, FP, now=120)
    assert (state.failures, state.retry_at, state.applied_commit) == (0, None, C)


def test_source_outage_backs_off_and_recovers():
    state = APPLIED
    waits = []
    for now in (110, 112, 116, 124):
        obs = Observation(now=now, fingerprint=FP, source_error="cannot reach the remote")
        waits.append(decide(state, obs, POLICY).wait)
        state = failed(state, obs, POLICY)
    assert waits == [2, 4, 8, 16]
    assert state.applied_commit == A
    # Back, and nothing moved: wait out the backoff, then rest.
    assert decide(state, Observation(now=125, fingerprint=FP, head=A), POLICY).action == Action.WAIT
    assert decide(state, Observation(now=140, fingerprint=FP, head=A), POLICY).action in (Action.NOTHING, Action.DRIFT)
    # Back with a new commit: applied at once.
    assert decide(state, Observation(now=125, fingerprint=FP, head=B), POLICY).action == Action.UP


def test_webhook_cuts_a_backoff_short():
    state = failed(APPLIED, Observation(now=110, fingerprint=FP, head=B), POLICY)
    assert decide(state, Observation(now=111, fingerprint=FP, head=B), POLICY).action == Action.WAIT
    assert decide(webhook(state), Observation(now=111, fingerprint=FP, head=B), POLICY).action == Action.UP


def test_failed_drift_check_is_not_retried_in_a_tight_loop():
    obs = Observation(now=200, fingerprint=FP, head=A)
    state = failed(APPLIED, obs, POLICY, during_drift=True)
    assert state.last_drift_check == 200
    assert decide(state, Observation(now=203, fingerprint=FP, head=A), POLICY).action == Action.NOTHING


@pytest.mark.parametrize("last,now,expected", [(100, 110, 10), (100, 155, 5), (100, 170, 0), (None, 0, 10)])
def test_next_wait_is_shortened_for_a_due_drift_check(last, now, expected):
    assert next_wait(WatchState(applied_commit=A, last_drift_check=last), now, POLICY) == expected

"""The record of what a run may create, which recovery settles a killed run from."""
import pytest
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult

from gitops.engine.recover import Recovery, Settled, _replay_env
from gitops.engine.run import _killed
from gitops.errors import EngineError
from gitops.intent import Intent, LastRun, delta_targets, read_intent
from gitops.program import IMAGE_TAGS_ENV, REPLAY_ENV, VERIFIED_ENV


def test_an_intent_is_read_back_as_written_and_no_file_means_every_run_ended(tmp_path):
    path = tmp_path / "intent.json"
    assert read_intent(path) is None
    intent = Intent(commit="c" * 40, provider="urn:p", digests={"urn:a": "1", "urn:b": ""}, settings="s",
                    image_tags="e30=")
    intent.write(path)
    assert read_intent(path) == intent
    assert [p.name for p in tmp_path.iterdir()] == ["intent.json"], "no temporary file is left"


@pytest.mark.parametrize("text", ["", "{", "[]", '{"commit": "c"}',
                                  '{"commit": "c", "provider": "p", "digests": 3, "settings": "s"}'])
def test_an_unreadable_intent_is_one_error_naming_the_file(tmp_path, text):
    path = tmp_path / "intent.json"
    path.write_text(text)
    with pytest.raises(EngineError, match=f"{path}: unreadable record of a run"):
        read_intent(path)


def test_a_replay_applies_the_killed_commit_awaiting_nothing_with_its_image_tags():
    intent = Intent(commit="abc", provider="urn:p", digests={}, settings="s", image_tags="e30=")
    assert _replay_env(intent) == {VERIFIED_ENV: "abc", REPLAY_ENV: "1", IMAGE_TAGS_ENV: "e30="}
    assert IMAGE_TAGS_ENV not in _replay_env(Intent(commit="abc", provider="urn:p", digests={}, settings="s"))


@pytest.mark.parametrize(("code", "killed"), [(-9, True), (-15, True), (1, False), (255, False)])
def test_only_a_cli_that_died_of_a_signal_counts_as_killed(code, killed):
    error = auto.errors.CommandError(CommandResult(stdout="code: -9 in the text", stderr="", code=code))
    assert _killed(error) is killed


def test_a_settled_run_is_one_line_saying_what_was_done():
    lines = Recovery(settled=Settled(commit="0123456789abcdef", replayed=3, drifted=2)).lines()
    assert lines == ["settled a run of commit 0123456789ab that was killed before it saved the state: 3 object(s) "
                     "of that commit the state lacked applied again so the state has them, then 2 object(s) it "
                     "had changed or deleted refreshed from the cluster"]
    assert Recovery(settled=Settled("c", 0, 0)).changed


def last_run(digests, *, stamp=(1, 2), settings="s", full_at=100.0):
    return LastRun(Intent(commit="c", provider="urn:p", digests=digests, settings=settings), stamp, full_at)


A, B, C = "urn:pulumi:s::p::kubernetes:core/v1:ConfigMap::core/ConfigMap:ns/a", \
    "urn:pulumi:s::p::kubernetes:core/v1:ConfigMap::core/ConfigMap:ns/b", \
    "urn:pulumi:s::p::kubernetes:core/v1:Secret::core/Secret:ns/c"


def test_a_delta_run_targets_what_changed_or_was_added_and_every_secret():
    last = last_run({A: "1", C: ""})
    assert delta_targets(last, {A: "1", C: ""}, "s", (1, 2), 200.0, 3600.0) == (C,)
    assert delta_targets(last, {A: "9", B: "2", C: ""}, "s", (1, 2), 200.0, 3600.0) == (A, B, C)
    assert delta_targets(last_run({A: "1"}), {A: "1"}, "s", (1, 2), 200.0, 3600.0) == ()


def test_a_commit_that_deletes_an_object_is_a_full_run():
    assert delta_targets(last_run({A: "1", B: "2"}), {A: "1"}, "s", (1, 2), 200.0, 3600.0) is None


@pytest.mark.parametrize(("last", "stamp", "settings", "now", "every"), [
    (None, (1, 2), "s", 200.0, 3600.0),               # no run succeeded since the last failure
    (last_run({A: "1"}), (1, 3), "s", 200.0, 3600.0),  # another run saved the checkpoint since
    (last_run({A: "1"}), None, "s", 200.0, 3600.0),    # not a file backend
    (last_run({A: "1"}), (1, 2), "t", 200.0, 3600.0),  # settings that reach every object changed
    (last_run({A: "1"}), (1, 2), "s", 3700.0, 3600.0),  # a full run is due
    (last_run({A: "1"}), (1, 2), "s", 200.0, None),    # fullRunInterval 0: every run is full
])
def test_every_object_goes_through_the_engine_unless_the_last_run_can_be_trusted(last, stamp, settings, now, every):
    assert delta_targets(last, {A: "1"}, settings, stamp, now, every) is None


def test_an_api_version_change_is_a_full_run_so_the_engine_follows_the_alias():
    moved = A.replace("core/v1:ConfigMap::", "core/v2:ConfigMap::")
    assert delta_targets(last_run({A: "1", B: "2"}), {moved: "1", B: "2"}, "s", (1, 2), 200.0, 3600.0) is None


def test_a_targeted_run_registers_its_targets_what_they_need_and_what_needs_them():
    from gitops.resources import ResourceSpec, targeted_specs, urn

    def spec(name, *deps):
        return ResourceSpec(name=name, type="t", props={}, depends_on=deps, alias_types=(), secret_fields=(),
                            subject=name)

    specs = [spec("ns"), spec("crd"), spec("a", "ns"), spec("g", "ns", "crd"), spec("other")]
    def names(*targets):
        return [s.name for s in targeted_specs(specs, {urn("s", "p", "t", n) for n in targets}, "s", "p")]

    assert names("a") == ["ns", "a"]
    assert names("crd") == ["crd", "g"], "the engine would take an unregistered Gadget for a delete"

"""The record of what a run may create, which recovery settles a killed run from."""
import pytest
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult

from gitops.engine.recover import Recovery, Settled, _replay_env
from gitops.engine.run import _killed
from gitops.errors import EngineError
from gitops.intent import Intent, read_intent
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

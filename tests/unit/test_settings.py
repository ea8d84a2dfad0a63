import dataclasses
import re

import pytest

from gitops.errors import SettingsError
from gitops.settings import read_stack_settings, settings_from_config


def test_defaults():
    s = settings_from_config({"gitops:repo": "https://example.invalid/r.git"})
    assert (s.source.ref, s.source.path, s.program.namespace, s.program.prune, s.cluster.kubeconfig,
            s.program.skip_await, s.program.cluster_kinds) == ("HEAD", ".", "default", True, None, False, ())


def test_strings_from_pulumi_config_are_parsed():
    s = settings_from_config({"repo": ".", "prune": "false", "skipAwait": "true", "clusterKinds": '["A.x", "B"]',
                              "path": "/deploy/"})
    assert (s.program.prune, s.program.skip_await, s.program.cluster_kinds, s.source.path) == (
        False, True, ("A.x", "B"), "deploy")


@pytest.mark.parametrize("config,message", [
    ({}, "gitops:repo is required"),
    ({"repo": ".", "prune": "maybe"}, "gitops:prune must be true or false"),
    ({"repo": ".", "prnue": "false"}, "unknown setting(s) gitops:prnue"),
    ({"repo": ".", "clusterKinds": 3}, "gitops:clusterKinds must be a list"),
])
def test_bad_settings_are_named(config, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from_config(config)


def test_stack_file_is_read_and_errors_name_it(tmp_path):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.s.yaml").write_text(
        "config:\n  gitops:repo: r\n  gitops:prune: false\n  kubernetes:context: x\n")
    assert read_stack_settings(tmp_path, "s").program.prune is False
    (tmp_path / "stacks" / "Pulumi.t.yaml").write_text("config:\n  gitops:nope: 1\n  gitops:repo: r\n")
    with pytest.raises(SettingsError, match=r"Pulumi.t.yaml"):
        read_stack_settings(tmp_path, "t")
    with pytest.raises(SettingsError, match="no stack file"):
        read_stack_settings(tmp_path, "missing")


def test_local_repo_paths_resolve_against_the_project(tmp_path):
    s = settings_from_config({"repo": "config"})
    assert s.source.resolved_repo(tmp_path) == str(tmp_path / "config")
    scp_like = settings_from_config({"repo": "git@example.invalid:o/r.git"})
    assert scp_like.source.resolved_repo(tmp_path) == "git@example.invalid:o/r.git"


def test_watcher_settings():
    s = settings_from_config({"repo": "."})
    assert (s.watch.drift_interval, s.watch.drift_mode, s.safety.max_delete_percent, s.safety.allow_mass_delete) == (
        300, "correct", 50, False)
    s = settings_from_config({"repo": ".", "driftInterval": "0", "driftMode": "report", "maxDeletePercent": "20",
                              "allowMassDelete": "true"})
    assert (s.watch.drift_interval, s.watch.drift_mode, s.safety.max_delete_percent, s.safety.allow_mass_delete) == (
        None, "report", 20, True)


@pytest.mark.parametrize("config,message", [
    ({"driftInterval": "soon"}, "gitops:driftInterval must be a number"),
    ({"driftInterval": -1}, "must not be negative"),
    ({"driftMode": "fix"}, "gitops:driftMode must be one of correct, report"),
    ({"maxDeletePercent": 150}, "is a percentage"),
    ({"allowMassDelete": "sure"}, "gitops:allowMassDelete must be true or false"),
])
def test_bad_watcher_settings(config, message):
    with pytest.raises(SettingsError, match=message):
        settings_from_config({"repo": ".", **config})


def test_the_readme_table_is_the_declarations():
    from pathlib import Path

    from gitops.settings import settings_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert settings_table() in readme, "README's settings table differs: paste `python -m gitops.settings`"


def test_every_setting_is_declared_once_with_a_default_and_a_meaning():
    from gitops.settings import GROUPS, keys

    declared = keys()
    assert len(declared) == sum(len(dataclasses.fields(g)) for g in GROUPS.values())
    assert all(key.meaning and key.shown for _, key in declared.values())
    defaults = settings_from_config({"repo": "r"})
    for group_name, group in GROUPS.items():
        for f in dataclasses.fields(group):
            if f.name != "repo":  # the one without a default
                assert getattr(getattr(defaults, group_name), f.name) == getattr(group(), f.name)


@pytest.mark.parametrize("template,message", [
    ("{oops}", "unknown placeholder {oops}"),
    ("{summary.__class__}", "unknown placeholder"),
    ("{", "malformed"),
    ("{summary:d}", "cannot be rendered"),
])
def test_a_bad_commit_message_template_is_refused_when_the_settings_are_read(template, message):
    # Issue 10, bug 1: it passed settings validation and killed the watcher at the first accepted tag.
    with pytest.raises(SettingsError, match=re.escape(message)):
        settings_from_config({"repo": ".", "imageCommitMessage": template})
    assert settings_from_config({"repo": ".", "imageCommitMessage": "{summary}\n\n{images}"}).images.commit_message


@pytest.mark.parametrize("key", ["kubeQps", "kubeBurst"])
def test_a_zero_client_rate_is_refused(key):
    with pytest.raises(SettingsError, match=f"gitops:{key} must be more than 0"):
        settings_from_config({"repo": ".", key: 0})


def test_the_salt_pulumi_adds_to_a_stack_file_is_no_change_of_settings():
    from gitops.settings import stack_fingerprint

    written = b"config:\n  gitops:repo: .\n  gitops:path: apps\n"
    salted = written + b"encryptionsalt: v1:abc:def\n"
    assert stack_fingerprint(salted) == stack_fingerprint(written)
    assert stack_fingerprint(written.replace(b"apps", b"web")) != stack_fingerprint(written)
    assert stack_fingerprint(b"config: [broken\n") != stack_fingerprint(b"config: [broken \n")
    # As a test or a person writes it, and as Pulumi writes it back on first use.
    ours = b'{"config": {"gitops:repo": "/r", "gitops:skipAwait": true, "gitops:kubeQps": 8}}'
    pulumis = b'{"config": {"gitops:repo": "/r", "gitops:skipAwait": "true", "gitops:kubeQps": "8"}, ' \
              b"encryptionsalt: 'v1:a:b'}"
    assert stack_fingerprint(ours) == stack_fingerprint(pulumis)
    assert stack_fingerprint(ours) != stack_fingerprint(ours.replace(b"true", b"false"))

import pytest

from gitops.errors import SettingsError
from gitops.settings import read_stack_settings, settings_from_config


def test_defaults():
    s = settings_from_config({"gitops:repo": "https://example.invalid/r.git"})
    assert (s.ref, s.path, s.namespace, s.prune, s.kubeconfig, s.skip_await, s.cluster_kinds) == (
        "HEAD", ".", "default", True, None, False, ())


def test_strings_from_pulumi_config_are_parsed():
    s = settings_from_config({"repo": ".", "prune": "false", "skipAwait": "true", "clusterKinds": '["A.x", "B"]', "path": "/deploy/"})
    assert (s.prune, s.skip_await, s.cluster_kinds, s.path) == (False, True, ("A.x", "B"), "deploy")


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
    (tmp_path / "stacks" / "Pulumi.s.yaml").write_text("config:\n  gitops:repo: r\n  gitops:prune: false\n  kubernetes:context: x\n")
    assert read_stack_settings(tmp_path, "s").prune is False
    (tmp_path / "stacks" / "Pulumi.t.yaml").write_text("config:\n  gitops:nope: 1\n  gitops:repo: r\n")
    with pytest.raises(SettingsError, match="Pulumi.t.yaml"):
        read_stack_settings(tmp_path, "t")
    with pytest.raises(SettingsError, match="no stack file"):
        read_stack_settings(tmp_path, "missing")


def test_local_repo_paths_resolve_against_the_project(tmp_path):
    s = settings_from_config({"repo": "config"})
    assert s.resolved_repo(tmp_path) == str(tmp_path / "config")
    assert settings_from_config({"repo": "git@example.invalid:o/r.git"}).resolved_repo(tmp_path) == "git@example.invalid:o/r.git"


def test_watcher_settings():
    s = settings_from_config({"repo": "."})
    assert (s.drift_interval, s.drift_mode, s.max_delete_percent, s.allow_mass_delete) == (300, "correct", 50, False)
    s = settings_from_config({"repo": ".", "driftInterval": "0", "driftMode": "report", "maxDeletePercent": "20",
                              "allowMassDelete": "true"})
    assert (s.drift_interval, s.drift_mode, s.max_delete_percent, s.allow_mass_delete) == (None, "report", 20, True)


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

"""Parsing `--comment` targets: GitHub pull requests and GitLab merge requests."""
from __future__ import annotations

import pytest

from gitops.errors import SettingsError
from gitops.plan.target import PullRequestTarget, parse_target


@pytest.mark.parametrize("text,provider,repository,number", [
    ("github:owner/repo#123", "github", "owner/repo", 123),
    ("  github:my-org/my.repo_x#1\n", "github", "my-org/my.repo_x", 1),
    ("gitlab:group/project!42", "gitlab", "group/project", 42),
    ("gitlab:group/sub/deeper/project!7", "gitlab", "group/sub/deeper/project", 7),
    ("gitlab:12345!9", "gitlab", "12345", 9),
])
def test_parse(text, provider, repository, number):
    target = parse_target(text)
    assert target == PullRequestTarget(provider, repository, number)
    assert str(target) == text.strip()


@pytest.mark.parametrize("text,hint", [
    ("github:owner/repo", ""),
    ("github:owner/repo#0", ""),
    ("github:owner/repo#12a", ""),
    ("github:owner#1", ""),
    ("github:a/b/c#1", ""),
    ("github:../repo#1", ""),
    ("github:owner/repo!3", "written with '#'"),
    ("gitlab:group/project#42", "written with '!'"),
    ("gitlab:project!42", ""),
    ("gitlab:group//project!42", ""),
    ("gitlab:group/../x!42", ""),
    ("bitbucket:o/r#1", ""),
    ("owner/repo#1", ""),
    ("", ""),
])
def test_refused_with_usage(text, hint):
    with pytest.raises(SettingsError) as caught:
        parse_target(text)
    message = str(caught.value)
    assert "github:OWNER/REPO#NUMBER or gitlab:GROUP/PROJECT!NUMBER" in message and repr(text) in message
    assert hint in message

"""Where a plan is posted: `github:owner/repo#123` or `gitlab:group/sub/project!42`. Pure.

The separators follow each forge's own shorthand: `#` for a GitHub pull request, `!` for a GitLab
merge request (on GitLab `#` means an issue, so it is refused rather than guessed).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SettingsError

_SEGMENT = r"[A-Za-z0-9_.][A-Za-z0-9_.-]*"
_GITHUB = re.compile(rf"^github:(?P<repository>{_SEGMENT}/{_SEGMENT})#(?P<number>[1-9][0-9]*)$")
# A GitLab project is a path of two or more segments (subgroups) or its numeric id.
_GITLAB = re.compile(rf"^gitlab:(?P<repository>{_SEGMENT}(?:/{_SEGMENT})+|[1-9][0-9]*)!(?P<number>[1-9][0-9]*)$")
_USAGE = "github:OWNER/REPO#NUMBER or gitlab:GROUP/PROJECT!NUMBER"


@dataclass(frozen=True)
class PullRequestTarget:
    provider: str
    """`github` or `gitlab`."""
    repository: str
    """`owner/repo` on GitHub; `group/sub/project` (or a numeric project id) on GitLab."""
    number: int
    """The pull request number, or the merge request's iid."""

    def __str__(self) -> str:
        return f"{self.provider}:{self.repository}{'#' if self.provider == 'github' else '!'}{self.number}"


def parse_target(text: str) -> PullRequestTarget:
    """`github:owner/repo#123` -> PullRequestTarget("github", "owner/repo", 123)."""
    value = text.strip()
    for provider, pattern in (("github", _GITHUB), ("gitlab", _GITLAB)):
        match = pattern.match(value)
        if match:
            if any(part in (".", "..") for part in match["repository"].split("/")):
                break
            return PullRequestTarget(provider, match["repository"], int(match["number"]))
    hint = ""
    if value.startswith("gitlab:") and "#" in value:
        hint = " (GitLab merge requests are written with '!', e.g. gitlab:group/project!42)"
    elif value.startswith("github:") and "!" in value:
        hint = " (GitHub pull requests are written with '#', e.g. github:owner/repo#7)"
    raise SettingsError(f"--comment must look like {_USAGE}, not {text!r}{hint}")

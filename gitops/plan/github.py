"""Post a plan on a GitHub pull request: edit our earlier comments in place, and set a commit status."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from urllib.parse import quote

import requests

from ..errors import SettingsError
from .forge import ApiTransport, Comment, CommentThread, HeaderAuth, shorten, upsert_comments

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
STATES = ("error", "failure", "pending", "success")
MAX_DESCRIPTION = 140  # GitHub answers 422 to a longer status description
# GitHub refuses a longer comment body.
COMMENT_LIMIT = 65_536


# ---------------------------------------------------------------- GitHub


class GitHubClient:
    """Comments and commit statuses on GitHub or GitHub Enterprise (`https://host/api/v3`)."""

    provider = "github"
    max_comment_chars = COMMENT_LIMIT

    def __init__(self, token: str, base_url: str = DEFAULT_API_URL, session: requests.Session | None = None,
                 timeout: float = 15):
        if not token:
            raise SettingsError("a GitHub token is needed: set GITOPS_GITHUB_TOKEN or GITHUB_TOKEN")
        self._http = ApiTransport(
            "GitHub", base_url, HeaderAuth("Authorization", f"Bearer {token}"), token,
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION},
            session=session, timeout=timeout,
            hints={401: " (check the token in GITOPS_GITHUB_TOKEN or GITHUB_TOKEN)",
                   403: " (the token needs `pull-requests: write` for comments and `statuses: write` for "
                        "statuses; GitHub Actions gives pull requests from forks a read-only token)",
                   404: " (no such repository or pull request, or the token cannot see it)"})

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, *, session: requests.Session | None = None,
                         timeout: float = 15) -> GitHubClient:
        """Token from `GITOPS_GITHUB_TOKEN` or `GITHUB_TOKEN`; API from `GITHUB_API_URL` (set by Actions)."""
        env = os.environ if env is None else env
        token = env.get("GITOPS_GITHUB_TOKEN") or env.get("GITHUB_TOKEN") or ""
        return cls(token, (env.get("GITHUB_API_URL") or "").strip() or DEFAULT_API_URL, session, timeout)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def __repr__(self) -> str:
        return f"GitHubClient(base_url={self.base_url!r})"

    def comments(self, owner_repo: str, number: int) -> list[Comment]:
        """Every comment on the pull request, oldest first, all pages."""
        path = f"{_repo(owner_repo)}/issues/{int(number)}/comments?per_page=100"

        def next_url(response: requests.Response) -> str | None:
            url: str | None = response.links.get("next", {}).get("url")
            return url
        return [Comment.from_api(c, "GitHub") for page in self._http.pages(path, next_url) for c in page]

    def upsert_comments(self, owner_repo: str, number: int, bodies: Sequence[str], marker: str) -> list[int]:
        """`forge.upsert_comments` on the pull request's issue comments."""
        repo = _repo(owner_repo)
        thread = CommentThread(f"{repo}/issues/{int(number)}/comments",
                               lambda i: f"{repo}/issues/comments/{i}", "PATCH")
        return upsert_comments(self._http, thread, lambda: self.comments(owner_repo, number), bodies, marker,
                               self.max_comment_chars)

    def set_status(self, owner_repo: str, sha: str, state: str, description: str,
                   context: str = "gitops/preview", target_url: str | None = None) -> None:
        """A commit status; `description` is shortened to GitHub's 140 characters."""
        if state not in STATES:
            raise ValueError(f"GitHub status state must be one of {', '.join(STATES)}, not {state!r}")
        body = {"state": state, "description": shorten(description, MAX_DESCRIPTION), "context": context}
        if target_url:
            body["target_url"] = target_url
        self._http.request("POST", f"{_repo(owner_repo)}/statuses/{quote(sha, safe='')}", body)


def _repo(owner_repo: str) -> str:
    parts = owner_repo.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"a GitHub repository is OWNER/REPO, not {owner_repo!r}")
    return "/repos/" + "/".join(quote(p, safe="") for p in parts)

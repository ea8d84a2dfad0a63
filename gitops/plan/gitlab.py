"""Post a plan on a GitLab merge request: the GitHub client's behaviour with GitLab's notes API.

Notes are found by the same hidden marker, edited in place, missing parts added and surplus
parts deleted. Commit statuses take GitLab's states and also GitHub's (`failure` and `error`
become `failed`), so a caller can treat both forges alike.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests

from ..errors import SettingsError
from .forge import ApiTransport, Comment, CommentThread, HeaderAuth, shorten, upsert_comments

DEFAULT_API_URL = "https://gitlab.com/api/v4"
STATES = ("pending", "running", "success", "failed", "canceled")
_FROM_GITHUB = {"error": "failed", "failure": "failed"}
MAX_DESCRIPTION = 255


class GitLabClient:
    """Merge request notes and commit statuses on gitlab.com or a self-managed GitLab."""

    provider = "gitlab"
    max_comment_chars = 1_000_000

    def __init__(self, token: str, base_url: str = DEFAULT_API_URL, session: requests.Session | None = None,
                 timeout: float = 15):
        if not token:
            raise SettingsError("a GitLab token is needed: set GITOPS_GITLAB_TOKEN or GITLAB_TOKEN "
                                "(a project or personal access token with the api scope)")
        self._http = ApiTransport(
            "GitLab", base_url, HeaderAuth("PRIVATE-TOKEN", token), token, session=session, timeout=timeout,
            hints={401: " (check the token in GITOPS_GITLAB_TOKEN or GITLAB_TOKEN; CI_JOB_TOKEN cannot post notes)",
                   403: " (the token needs the api scope, and the Developer role to set commit statuses)",
                   404: " (no such project or merge request, or the token cannot see it)"})

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, *, session: requests.Session | None = None,
                         timeout: float = 15) -> GitLabClient:
        """Token from `GITOPS_GITLAB_TOKEN` or `GITLAB_TOKEN`; API from `CI_API_V4_URL` (set by GitLab CI)
        or `GITLAB_URL` (the instance, e.g. `https://gitlab.example.com`)."""
        env = os.environ if env is None else env
        token = env.get("GITOPS_GITLAB_TOKEN") or env.get("GITLAB_TOKEN") or ""
        base = (env.get("CI_API_V4_URL") or "").strip()
        if not base and (env.get("GITLAB_URL") or "").strip():
            base = env["GITLAB_URL"].strip().rstrip("/")
            base = base if base.endswith("/api/v4") else base + "/api/v4"
        return cls(token, base or DEFAULT_API_URL, session, timeout)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def __repr__(self) -> str:
        return f"GitLabClient(base_url={self.base_url!r})"

    def comments(self, project: str, number: int) -> list[Comment]:
        """Every person's or bot's note on the merge request (not system notes), oldest first."""
        path = f"{_mr(project, number)}/notes?per_page=100&sort=asc&order_by=created_at"
        return [Comment.from_api(n, "GitLab") for page in self._http.pages(path, _next_page) for n in page
                if not (isinstance(n, dict) and n.get("system"))]

    def upsert_comments(self, project: str, number: int, bodies: Sequence[str], marker: str) -> list[int]:
        """`forge.upsert_comments` on the merge request's notes."""
        notes = f"{_mr(project, number)}/notes"
        return upsert_comments(self._http, CommentThread(notes, lambda i: f"{notes}/{i}", "PUT"),
                               lambda: self.comments(project, number), bodies, marker, self.max_comment_chars)

    def set_status(self, project: str, sha: str, state: str, description: str,
                   context: str = "gitops/preview", target_url: str | None = None) -> None:
        """A commit status named `context`."""
        state = _FROM_GITHUB.get(state, state)
        if state not in STATES:
            raise ValueError(f"GitLab status state must be one of {', '.join(STATES)} "
                             f"(or GitHub's error, failure), not {state!r}")
        body = {"state": state, "name": context, "description": shorten(description, MAX_DESCRIPTION)}
        if target_url:
            body["target_url"] = target_url
        self._http.request("POST", f"/projects/{_project(project)}/statuses/{quote(sha, safe='')}", body,
                           ok=_ok_or_same_state)


def _project(project: str) -> str:
    """A path `group/sub/project` as one URL-encoded id (`group%2Fsub%2Fproject`), or a numeric id."""
    if not project or project.startswith("/") or project.endswith("/") or "//" in project:
        raise ValueError(f"a GitLab project is GROUP/PROJECT or a numeric id, not {project!r}")
    return quote(project, safe="")


def _mr(project: str, number: int) -> str:
    return f"/projects/{_project(project)}/merge_requests/{int(number)}"


def _next_page(response: requests.Response) -> str | None:
    """GitLab sends a `Link` header, but only `X-Next-Page` on some proxies and older versions."""
    link = response.links.get("next", {}).get("url")
    if link:
        return link
    page = response.headers.get("X-Next-Page", "").strip()
    if not page:
        return None
    parts = urlsplit(response.url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "page"] + [("page", page)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _ok_or_same_state(response: requests.Response) -> bool:
    # Posting the state a status already has (a re-run job) is refused with "Cannot transition".
    return response.status_code < 400 or (
        response.status_code == 400 and "cannot transition status" in response.text.lower())

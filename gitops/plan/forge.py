"""What GitHub and GitLab share: a forge's REST API over requests, and how our plan comments on
a pull or merge request are kept in step with the plan.

Our comments are found by the hidden marker line `render.markdown_comments` puts first in each
body, so a second run edits the same comments instead of adding new ones, and a plan that
shrinks from three comments to one deletes the other two. `ApiTransport` turns errors into
`PublishError` with the method and path, and the token never reaches a message, a repr or a
request to another host.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase

from ..errors import PublishError
from ..http import request_failure
from ..urls import redact
from .render import part_of

_MAX_PAGES = 1000  # a guard against a server whose next links never end
_MAX_REDIRECTS = 5


# ---------------------------------------------------------------- which comments to edit (pure)


@dataclass(frozen=True)
class Comment:
    id: int
    body: str

    @staticmethod
    def from_api(item: Any, provider: str) -> Comment:
        if not isinstance(item, dict) or not isinstance(item.get("id"), int):
            raise PublishError(f"{provider} API listed a comment without an id: {str(item)[:100]}")
        return Comment(item["id"], str(item.get("body") or ""))


@dataclass(frozen=True)
class CommentSync:
    """How to turn the comments on a pull request into exactly the new bodies."""

    pairs: tuple[tuple[str, Comment | None], ...]
    """Each new body, in part order, with our earlier comment it replaces (None: post a new one)."""
    delete: tuple[Comment, ...]
    """Our earlier comments no new body needs."""


def sync_comments(existing: Sequence[Comment], bodies: Sequence[str], marker: str) -> CommentSync:
    """Pair new bodies with our earlier comments for `marker`, in part order (then age)."""
    ours = sorted((c for c in existing if part_of(c.body, marker) is not None),
                  key=lambda c: (part_of(c.body, marker), c.id))
    pairs = tuple((body, ours[i] if i < len(ours) else None) for i, body in enumerate(bodies))
    return CommentSync(pairs, tuple(ours[len(bodies):]))


# ---------------------------------------------------------------- HTTP


class HeaderAuth(AuthBase):
    """One header carrying the token. As an auth object it also keeps `.netrc` from overriding it."""

    def __init__(self, header: str, value: str):
        self._header, self._value = header, value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self._header] = self._value
        return request

    def __repr__(self) -> str:
        return f"HeaderAuth({self._header}: ***)"


class ApiTransport:
    """A forge's REST API over requests: base URL, auth, timeouts and clear `PublishError`s."""

    def __init__(self, provider: str, base_url: str, auth: HeaderAuth, secret: str, *,
                 headers: Mapping[str, str] | None = None, session: requests.Session | None = None,
                 timeout: float = 15, hints: Mapping[int, str] | None = None):
        self.provider = provider
        self.base_url = redact(base_url.strip().rstrip("/"))
        self.timeout = timeout
        self._auth, self._secret = auth, secret
        self._headers = dict(headers or {})
        self._session = session or requests.Session()
        self._hints = dict(hints or {})

    def __repr__(self) -> str:
        return f"ApiTransport({self.provider}, {self.base_url!r})"

    def request(self, method: str, path: str, json_body: Any = None,
                ok: Callable[[requests.Response], bool] = lambda r: r.status_code < 400) -> requests.Response:
        """`path` is relative to the base URL, or a full URL on the same host (a next-page link)."""
        url = path if "://" in path else self.base_url + path
        shown = self._shown(url)
        for _ in range(_MAX_REDIRECTS):
            response = self._send(method, url, shown, json_body)
            location = response.headers.get("Location")
            if response.status_code not in (301, 302, 307, 308) or not location:
                break
            url = urljoin(url, location)  # a renamed repository or project moves its API paths
        else:
            raise PublishError(f"{self.provider} API redirected {method} {shown} more than {_MAX_REDIRECTS} times")
        if not ok(response):
            hint = self._hints.get(response.status_code, "")
            if response.status_code == 403 and "rate limit" in _api_message(response).lower():
                hint = " (rate limited; retry later)"
            # GitLab's messages repeat the code ("401 Unauthorized"); say it once.
            message = _api_message(response).removeprefix(f"{response.status_code} ")
            raise PublishError(self._scrub(f"{self.provider} API answered {response.status_code} "
                                           f"{message} for {method} {shown}{hint}"))
        return response

    def _send(self, method: str, url: str, shown: str, json_body: Any) -> requests.Response:
        if _origin(url) != _origin(self.base_url):
            # The token goes only to the API the user configured, whatever a server links or
            # redirects to (requests would keep a PRIVATE-TOKEN header across hosts).
            raise PublishError(f"{self.provider} API at {self.base_url}/ pointed to another host "
                               f"({_origin(url)}) for {method} {shown}; not following it")
        try:
            return self._session.request(method, url, json=json_body, headers=self._headers, auth=self._auth,
                                         timeout=self.timeout, allow_redirects=False)
        except requests.exceptions.ConnectTimeout as e:
            raise PublishError(self._scrub(f"cannot reach {self.provider} API at {self.base_url}/: "
                                           f"no connection within {self.timeout:g} s")) from e
        except requests.Timeout as e:
            raise PublishError(self._scrub(f"{self.provider} API at {self.base_url}/ did not answer "
                                           f"{method} {shown} within {self.timeout:g} s")) from e
        except requests.RequestException as e:
            raise PublishError(self._scrub(f"cannot reach {self.provider} API at {self.base_url}/: "
                                           f"{request_failure(e)}")) from e

    def create(self, path: str, json_body: Any) -> int:
        """POST a new object; its id."""
        data = read_json(self.request("POST", path, json_body))
        new_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(new_id, int):
            raise PublishError(f"{self.provider} API answered POST {path} without the new object's id")
        return new_id

    def pages(self, path: str, next_url: Callable[[requests.Response], str | None]) -> Iterator[list[Any]]:
        """Each page of a list endpoint, following `next_url` until it gives None."""
        url: str | None = path
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            response = self.request("GET", url)
            items = read_json(response)
            if not isinstance(items, list):
                raise PublishError(f"{self.provider} API answered GET {self._shown(url)} with something "
                                   f"other than a list")
            yield items
            url = next_url(response)
        raise PublishError(f"{self.provider} API kept sending next-page links for GET {path}; "
                           f"stopped after {_MAX_PAGES} pages")

    def _shown(self, url: str) -> str:
        return url[len(self.base_url):] if url.startswith(self.base_url) else redact(url)

    def _scrub(self, message: str) -> str:
        # Belt and braces: a proxy or fake server echoing headers must not put the token in a log.
        return message.replace(self._secret, "***") if len(self._secret) >= 4 else message


def ok_or_gone(response: requests.Response) -> bool:
    """For a DELETE: already gone (another run deleted it) is fine."""
    return response.status_code < 400 or response.status_code == 404


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}".lower()


def read_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _api_message(response: requests.Response) -> str:
    """GitHub: `message` plus each of `errors`; GitLab: `message` (a string or field -> errors) or `error`."""
    data = read_json(response)
    if isinstance(data, dict):
        message = data.get("message", data.get("error"))
        if isinstance(message, dict):  # GitLab validation: {"note": ["is too long ..."]}
            message = "; ".join(f"{field} {' '.join(map(str, v if isinstance(v, list) else [v]))}"
                                for field, v in message.items())
        errors = data.get("errors")
        details = [str(e.get("message") or e.get("code")) if isinstance(e, dict) else str(e)
                   for e in (errors if isinstance(errors, list) else [errors] if errors else []) if e]
        text = str(message or response.reason or "error")
        return f"{text}: {'; '.join(details)}" if details else text
    body = " ".join(response.text.split())[:200]
    return body or response.reason or "error"


# ---------------------------------------------------------------- keeping comments in step


@dataclass(frozen=True)
class CommentThread:
    """Where a forge keeps one pull or merge request's comments, as API paths."""

    collection: str
    """Path to list (with `?per_page=` added by the caller) and to create comments."""
    item: Callable[[int], str]
    """Path of one comment by id."""
    edit_method: str
    """`PATCH` on GitHub, `PUT` on GitLab."""


def upsert_comments(http: ApiTransport, thread: CommentThread, existing: Callable[[], Sequence[Comment]],
                    bodies: Sequence[str], marker: str, limit: int) -> list[int]:
    """Make our comments for `marker` exactly `bodies`: edit in order, add missing, delete surplus.

    Returns the comment ids in part order. A body equal to the comment's is not sent again, so an
    unchanged plan does not notify anyone."""
    check_bodies(bodies, marker, limit, http.provider)
    sync = sync_comments(existing(), bodies, marker)
    ids = []
    for body, old in sync.pairs:
        if old is None:
            ids.append(http.create(thread.collection, {"body": body}))
        else:
            if old.body != body:
                http.request(thread.edit_method, thread.item(old.id), {"body": body})
            ids.append(old.id)
    for old in sync.delete:
        http.request("DELETE", thread.item(old.id), ok=ok_or_gone)
    return ids


def check_bodies(bodies: Sequence[str], marker: str, limit: int, provider: str) -> None:
    """Refuse before changing anything: half-posted plans confuse reviewers more than none."""
    for i, body in enumerate(bodies, start=1):
        if part_of(body, marker) is None:
            raise ValueError(f"comment {i} does not start with the marker line for {marker!r}; "
                             f"render it with render.markdown_comments")
        if len(body) > limit:
            raise PublishError(f"comment {i} has {len(body)} characters; {provider} takes at most {limit} "
                               f"(render.markdown_comments splits a plan to fit)")


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"

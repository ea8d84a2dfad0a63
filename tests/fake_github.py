"""A loopback GitHub REST API for tests: issue comments (paginated with `Link` headers) and commit
statuses, with GitHub's token check, its 65,536-character body limit and its error shapes.

`FakeServer` is the shared part (a ThreadingHTTPServer on a free 127.0.0.1 port, in a daemon
thread, recording every request); `fake_gitlab.FakeGitLab` builds on it too.

    with FakeGitHub(token="t") as gh:
        client = GitHubClient("t", base_url=gh.url)
        ...
        assert gh.requests[-1].method == "POST"
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 65_536
DOCS = "https://docs.github.com/rest"


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    """The raw path with its query, e.g. `/repos/o/r/issues/5/comments?per_page=100`."""
    json: Any
    headers: dict[str, str]


@dataclass
class Reply:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeServer:
    """Serve `self.handle(method, path, query, body, headers) -> Reply` on loopback until `stop()`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.RLock()
        self._forced: list[tuple[str | None, Reply]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                parts = urlsplit(self.path)
                headers = dict(self.headers.items())
                with fake.lock:
                    fake.requests.append(Recorded(self.command, self.path, body, headers))
                    reply = fake._take_forced(self.command) or fake.handle(
                        self.command, parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}, body, headers)
                data = b"" if reply.payload is None else json.dumps(reply.payload).encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if data:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        raise NotImplementedError

    def fail_next(self, status: int, payload: Any, method: str | None = None,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next request (of `method`, if given) with this reply instead."""
        with self.lock:
            self._forced.append((method, Reply(status, payload, headers or {})))

    def _take_forced(self, method: str) -> Reply | None:
        for i, (only, reply) in enumerate(self._forced):
            if only in (None, method):
                del self._forced[i]
                return reply
        return None

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def calls(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and contains in r.path]


def page_links(url: str, page: int, pages: int, per_page: int, extra: str = "") -> str:
    """GitHub's `Link` header: first, prev, next, last as they apply."""
    def link(n: int, rel: str) -> str:
        return f'<{url}?{extra}per_page={per_page}&page={n}>; rel="{rel}"'

    rels = []
    if page > 1:
        rels += [link(page - 1, "prev"), link(1, "first")]
    if page < pages:
        rels += [link(page + 1, "next"), link(pages, "last")]
    return ", ".join(rels)


class FakeGitHub(FakeServer):
    """Issue comments and commit statuses. `prefix="/api/v3"` serves like GitHub Enterprise."""

    _LIST = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$")
    _ONE = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/comments/(\d+)$")
    _STATUS = re.compile(r"^/repos/([^/]+)/([^/]+)/statuses/([0-9a-fA-F]{7,64})$")

    def __init__(self, token: str = "test-token", prefix: str = "", user: str = "github-actions[bot]"):
        self.token, self.prefix, self.user = token, prefix, user
        self.comments: dict[int, dict[str, Any]] = {}
        self.statuses: list[dict[str, Any]] = []
        self._next_id = 1000
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}{prefix}"

    # -- helpers for tests

    def add_comment(self, owner_repo: str, number: int, body: str, user: str = "someone") -> int:
        with self.lock:
            return self._create(owner_repo, number, body, user)["id"]

    def comments_on(self, owner_repo: str, number: int) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in sorted(self.comments.values(), key=lambda c: c["id"])
                    if c["repo"] == owner_repo and c["number"] == number]

    # -- the API

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return Reply(401, {"message": "Bad credentials", "documentation_url": DOCS})
        if not path.startswith(self.prefix):
            return _not_found()
        path = path[len(self.prefix):]
        if match := self._LIST.match(path):
            repo, number = f"{match[1]}/{match[2]}", int(match[3])
            if method == "GET":
                return self._list(repo, number, path, query)
            if method == "POST":
                if problem := _invalid_body(body):
                    return problem
                return Reply(201, self._public(self._create(repo, number, body["body"], self.user)))
        if match := self._ONE.match(path):
            comment = self.comments.get(int(match[3]))
            if comment is None or comment["repo"] != f"{match[1]}/{match[2]}":
                return _not_found()
            if method == "PATCH":
                if problem := _invalid_body(body):
                    return problem
                comment["body"] = body["body"]
                return Reply(200, self._public(comment))
            if method == "DELETE":
                del self.comments[comment["id"]]
                return Reply(204)
        if (match := self._STATUS.match(path)) and method == "POST":
            return self._status(f"{match[1]}/{match[2]}", match[3], body)
        return _not_found()

    def _create(self, repo: str, number: int, body: str, user: str) -> dict[str, Any]:
        self._next_id += 1
        comment = {"id": self._next_id, "repo": repo, "number": number, "body": body, "user": user}
        self.comments[comment["id"]] = comment
        return comment

    def _public(self, c: dict[str, Any]) -> dict[str, Any]:
        return {"id": c["id"], "body": c["body"], "user": {"login": c["user"], "type": "Bot"},
                "html_url": f"https://github.com/{c['repo']}/pull/{c['number']}#issuecomment-{c['id']}"}

    def _list(self, repo: str, number: int, path: str, query: dict[str, str]) -> Reply:
        per_page = min(max(int(query.get("per_page", 30)), 1), 100)
        page = max(int(query.get("page", 1)), 1)
        items = self.comments_on(repo, number)
        pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        links = page_links(f"http://127.0.0.1:{self.port}{self.prefix}{path}", page, pages, per_page)
        return Reply(200, [self._public(c) for c in chunk], {"Link": links} if links else {})

    def _status(self, repo: str, sha: str, body: Any) -> Reply:
        if not isinstance(body, dict) or body.get("state") not in ("error", "failure", "pending", "success"):
            return Reply(422, {"message": "Validation Failed", "documentation_url": DOCS,
                               "errors": [{"resource": "Status", "code": "custom", "field": "state",
                                           "message": "state is not included in the list"}]})
        if len(body.get("description") or "") > 140:
            return Reply(422, {"message": "Validation Failed", "documentation_url": DOCS,
                               "errors": [{"resource": "Status", "code": "custom", "field": "description",
                                           "message": "description is too long (maximum is 140 characters)"}]})
        status = {"id": len(self.statuses) + 1, "repo": repo, "sha": sha, "state": body["state"],
                  "description": body.get("description"), "context": body.get("context", "default"),
                  "target_url": body.get("target_url")}
        self.statuses.append(status)
        return Reply(201, status)


def _not_found() -> Reply:
    return Reply(404, {"message": "Not Found", "documentation_url": DOCS})


def _invalid_body(body: Any) -> Reply | None:
    if not isinstance(body, dict) or not isinstance(body.get("body"), str):
        return Reply(422, {"message": "Invalid request.\n\n\"body\" wasn't supplied.", "documentation_url": DOCS})
    if len(body["body"]) > MAX_BODY:
        return Reply(422, {"message": "Validation Failed", "documentation_url": DOCS,
                           "errors": [{"resource": "IssueComment", "code": "custom", "field": "body",
                                       "message": f"body is too long (maximum is {MAX_BODY} characters)"}]})
    return None

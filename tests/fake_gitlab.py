"""A loopback GitLab REST API (v4) for tests: merge request notes and commit statuses.

Projects must be addressed by their URL-encoded path (`group%2Fsub%2Fproject`) or numeric id, as
GitLab requires; lists are paginated with `X-Next-Page` and (unless `link_header=False`) `Link`.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlencode

from fake_github import FakeServer, Reply

MAX_NOTE = 1_000_000
STATES = ("pending", "running", "success", "failed", "canceled")


class FakeGitLab(FakeServer):
    _NOTES = re.compile(r"^/api/v4/projects/([^/]+)/merge_requests/(\d+)/notes$")
    _NOTE = re.compile(r"^/api/v4/projects/([^/]+)/merge_requests/(\d+)/notes/(\d+)$")
    _STATUS = re.compile(r"^/api/v4/projects/([^/]+)/statuses/([0-9a-fA-F]{7,64})$")

    def __init__(self, token: str = "glpat-test-token", link_header: bool = True, user: str = "project_bot"):
        self.token, self.link_header, self.user = token, link_header, user
        self.notes: dict[int, dict[str, Any]] = {}
        self.statuses: list[dict[str, Any]] = []
        self._next_id = 500
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}/api/v4"

    def add_note(self, project: str, iid: int, body: str, system: bool = False, user: str = "someone") -> int:
        with self.lock:
            return self._create(project, iid, body, user, system)["id"]

    def notes_on(self, project: str, iid: int, system: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            return [n for n in sorted(self.notes.values(), key=lambda n: n["id"])
                    if n["project"] == project and n["iid"] == iid and (system or not n["system"])]

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]) -> Reply:
        if headers.get("PRIVATE-TOKEN") != self.token:
            return Reply(401, {"message": "401 Unauthorized"})
        if match := self._NOTES.match(path):
            project, iid = unquote(match[1]), int(match[2])
            if method == "GET":
                return self._list(project, iid, path, query)
            if method == "POST":
                if problem := _invalid(body):
                    return problem
                return Reply(201, self._public(self._create(project, iid, body["body"], self.user, False)))
        if match := self._NOTE.match(path):
            note = self.notes.get(int(match[3]))
            if note is None or note["project"] != unquote(match[1]) or note["iid"] != int(match[2]):
                return Reply(404, {"message": "404 Not found"})
            if method == "PUT":
                if problem := _invalid(body):
                    return problem
                note["body"] = body["body"]
                return Reply(200, self._public(note))
            if method == "DELETE":
                del self.notes[note["id"]]
                return Reply(204)
        if (match := self._STATUS.match(path)) and method == "POST":
            return self._status(unquote(match[1]), match[2], body or {})
        return Reply(404, {"error": "404 Not Found"})

    def _create(self, project: str, iid: int, body: str, user: str, system: bool) -> dict[str, Any]:
        self._next_id += 1
        note = {"id": self._next_id, "project": project, "iid": iid, "body": body, "user": user, "system": system}
        self.notes[note["id"]] = note
        return note

    def _public(self, n: dict[str, Any]) -> dict[str, Any]:
        return {"id": n["id"], "body": n["body"], "author": {"username": n["user"]}, "system": n["system"],
                "noteable_type": "MergeRequest", "noteable_iid": n["iid"]}

    def _list(self, project: str, iid: int, path: str, query: dict[str, str]) -> Reply:
        per_page = min(max(int(query.get("per_page", 20)), 1), 100)
        page = max(int(query.get("page", 1)), 1)
        items = self.notes_on(project, iid, system=True)
        if query.get("sort", "desc") == "desc":  # GitLab's default: newest first
            items.reverse()
        pages = max(1, -(-len(items) // per_page))
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
                   "X-Total-Pages": str(pages), "X-Next-Page": str(page + 1) if page < pages else ""}
        if self.link_header and page < pages:
            query = {**query, "per_page": str(per_page), "page": str(page + 1)}
            headers["Link"] = f'<http://127.0.0.1:{self.port}{path}?{urlencode(query)}>; rel="next"'
        chunk = items[(page - 1) * per_page: page * per_page]
        return Reply(200, [self._public(n) for n in chunk], headers)

    def _status(self, project: str, sha: str, body: dict[str, Any]) -> Reply:
        state, name = body.get("state"), body.get("name") or "default"
        if state not in STATES:
            return Reply(400, {"error": "state does not have a valid value"})
        earlier = [s for s in self.statuses if s["sha"] == sha and s["name"] == name and s["project"] == project]
        if earlier and earlier[-1]["state"] == state:
            return Reply(400, {"message": f"Cannot transition status via :{state} from :{state}"})
        status = {"id": len(self.statuses) + 1, "project": project, "sha": sha, "state": state, "name": name,
                  "description": body.get("description"), "target_url": body.get("target_url")}
        self.statuses.append(status)
        return Reply(201, status)


def _invalid(body: Any) -> Reply | None:
    if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"]:
        return Reply(400, {"error": "body is missing"})
    if len(body["body"]) > MAX_NOTE:
        return Reply(400, {"message": {"note": [f"is too long (maximum is {MAX_NOTE} characters)"]}})
    return None

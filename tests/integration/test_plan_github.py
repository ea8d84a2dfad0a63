"""Posting plans on a pull request over real HTTP, against the loopback fake GitHub API (no cluster).

Covers the comment life cycle (create, edit in place, shrink, other stacks and people left
alone), pagination, commit statuses, and the failures a CI job meets: bad token, closed port,
a server that never answers, a body over GitHub's limit.
"""
from __future__ import annotations

import socket

import pytest
import requests

from gitops.errors import PublishError, SettingsError
from gitops.plan import render
from gitops.plan.github import COMMENT_LIMIT, GitHubClient
from gitops.plan.model import Change, FieldChange, Op, Plan

from fake_github import FakeGitHub

pytestmark = pytest.mark.integration

TOKEN = "ghp_test_TOKEN_value_1234567890"
REPO, PR = "acme/config", 5
MARKER = "gitops/prod"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def github():
    with FakeGitHub(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def client(github):
    return GitHubClient(TOKEN, base_url=github.url, timeout=5)


def plan(replicas: int = 3, objects: int = 1) -> Plan:
    changes = tuple(Change(f"Deployment/prod/web-{i:04d}", Op.UPDATE,
                           tuple(FieldChange(f"spec.field{j}", "update", "a" * 50, f"{replicas}-{j}" * 20)
                                 for j in range(10)))
                    for i in range(objects))
    return Plan(stack="prod", ref="main", commit=SHA, changes=changes, unchanged=4)


def bodies(p: Plan, marker: str = MARKER) -> list[str]:
    return render.markdown_comments(p, marker=marker, limit=COMMENT_LIMIT)


def test_first_post_creates_then_second_edits_same_comment(github, client):
    first = client.upsert_comments(REPO, PR, bodies(plan(3)), MARKER)
    assert len(first) == 1
    [comment] = github.comments_on(REPO, PR)
    assert comment["id"] == first[0] and "3-0" in comment["body"]

    second = client.upsert_comments(REPO, PR, bodies(plan(4)), MARKER)
    assert second == first
    [comment] = github.comments_on(REPO, PR)
    assert "4-0" in comment["body"] and "3-0" not in comment["body"]
    assert [r.method for r in github.requests] == ["GET", "POST", "GET", "PATCH"]
    assert github.requests[-1].path == f"/repos/{REPO}/issues/comments/{first[0]}"


def test_unchanged_plan_is_not_sent_again(github, client):
    ids = client.upsert_comments(REPO, PR, bodies(plan()), MARKER)
    assert client.upsert_comments(REPO, PR, bodies(plan()), MARKER) == ids
    assert github.calls("PATCH") == [] and len(github.calls("POST")) == 1


def test_headers(github, client):
    client.upsert_comments(REPO, PR, bodies(plan()), MARKER)
    headers = github.calls("POST")[0].headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/vnd.github+json"
    assert headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert github.calls("GET")[0].path == f"/repos/{REPO}/issues/{PR}/comments?per_page=100"


def test_split_into_three_then_one_deletes_surplus(github, client):
    three = bodies(plan(objects=110))
    assert len(three) == 3
    ids = client.upsert_comments(REPO, PR, three, MARKER)
    assert len(ids) == 3 and [c["id"] for c in github.comments_on(REPO, PR)] == ids

    one = bodies(plan(replicas=9))
    assert client.upsert_comments(REPO, PR, one, MARKER) == ids[:1]
    assert [c["body"] for c in github.comments_on(REPO, PR)] == one
    deleted = sorted(r.path for r in github.calls("DELETE"))
    assert deleted == sorted(f"/repos/{REPO}/issues/comments/{i}" for i in ids[1:])

    # and growing again reuses the one left and adds the rest
    again = client.upsert_comments(REPO, PR, three, MARKER)
    assert again[0] == ids[0] and len(set(again)) == 3
    assert [c["body"] for c in github.comments_on(REPO, PR)] == three


def test_other_stacks_and_people_are_left_alone(github, client):
    theirs = github.add_comment(REPO, PR, "LGTM")
    quote = github.add_comment(REPO, PR, "> " + bodies(plan())[0])
    other_stack = client.upsert_comments(REPO, PR, bodies(plan(), marker="gitops/staging"), "gitops/staging")
    ours = client.upsert_comments(REPO, PR, bodies(plan()), MARKER)
    client.upsert_comments(REPO, PR, bodies(plan(7)), MARKER)
    remaining = {c["id"] for c in github.comments_on(REPO, PR)}
    assert remaining == {theirs, quote, *other_stack, *ours}
    assert {r.path.rsplit("/", 1)[1] for r in github.calls("PATCH")} == {str(ours[0])}


def test_pagination_over_150_other_comments_finds_ours(github, client):
    for i in range(150):
        github.add_comment(REPO, PR, f"comment {i}")
    github.add_comment(REPO, 99, bodies(plan())[0])  # another pull request's: never touched
    ours = client.upsert_comments(REPO, PR, bodies(plan()), MARKER)  # the 151st: on page 2
    assert client.upsert_comments(REPO, PR, bodies(plan(6)), MARKER) == ours
    assert len(github.calls("POST")) == 1 and len(github.calls("PATCH")) == 1
    gets = [r.path for r in github.calls("GET")][2:]
    assert gets == [f"/repos/{REPO}/issues/{PR}/comments?per_page=100",
                    f"/repos/{REPO}/issues/{PR}/comments?per_page=100&page=2"]
    assert len(github.comments_on(REPO, PR)) == 151


def test_pages_honour_per_page_and_link_rel(github):
    for i in range(5):
        github.add_comment(REPO, PR, f"c{i}")
    response = requests.get(f"{github.url}/repos/{REPO}/issues/{PR}/comments?per_page=2&page=2",
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert [c["body"] for c in response.json()] == ["c2", "c3"]
    assert response.links["next"]["url"].endswith("per_page=2&page=3")
    assert response.links["last"]["url"].endswith("per_page=2&page=3")
    assert response.links["prev"]["url"].endswith("per_page=2&page=1")


def test_github_enterprise_base_path():
    with FakeGitHub(token=TOKEN, prefix="/api/v3") as ghe:
        for i in range(120):
            ghe.add_comment(REPO, PR, f"c{i}")
        client = GitHubClient.from_environment({"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": ghe.url + "/"})
        ids = client.upsert_comments(REPO, PR, bodies(plan()), MARKER)
        assert client.upsert_comments(REPO, PR, bodies(plan(8)), MARKER) == ids
        assert all(r.path.startswith("/api/v3/repos/") for r in ghe.requests)


def test_set_status(github, client):
    client.set_status(REPO, SHA, "success", "1 to update; 4 unchanged", target_url="https://ci.example/run/1")
    client.set_status(REPO, SHA, "failure", "x" * 300, context="gitops/preview/prod")
    first, second = github.statuses
    assert first == {"id": 1, "repo": REPO, "sha": SHA, "state": "success", "description": "1 to update; 4 unchanged",
                     "context": "gitops/preview", "target_url": "https://ci.example/run/1"}
    assert len(second["description"]) == 140 and second["description"].endswith("…")
    assert second["context"] == "gitops/preview/prod"
    assert github.calls("POST")[0].path == f"/repos/{REPO}/statuses/{SHA}"
    with pytest.raises(ValueError, match="error, failure, pending, success"):
        client.set_status(REPO, SHA, "failed", "x")


def test_bad_token_is_a_clear_error_without_the_token(github):
    bad = "ghp_WRONG_token_0987654321"
    with pytest.raises(PublishError) as caught:
        GitHubClient(bad, base_url=github.url).upsert_comments(REPO, PR, bodies(plan()), MARKER)
    message = str(caught.value)
    assert message.startswith(f"GitHub API answered 401 Bad credentials for GET /repos/{REPO}/issues/{PR}/comments")
    assert bad not in message and TOKEN not in message and "GITHUB_TOKEN" in message
    with pytest.raises(PublishError, match=f"401 Bad credentials for POST /repos/{REPO}/statuses/{SHA}"):
        GitHubClient(bad, base_url=github.url).set_status(REPO, SHA, "success", "ok")


def test_forbidden_names_the_permissions(github, client):
    github.fail_next(403, {"message": "Resource not accessible by integration"}, method="POST")
    with pytest.raises(PublishError) as caught:
        client.upsert_comments(REPO, PR, bodies(plan()), MARKER)
    assert ("GitHub API answered 403 Resource not accessible by integration for POST "
            f"/repos/{REPO}/issues/{PR}/comments") in str(caught.value)
    assert "pull-requests: write" in str(caught.value)


def test_body_over_limit_refused_before_anything_changes(github, client):
    too_long = render.marker_line(MARKER, 1, 1) + "\n" + "x" * 70_000
    with pytest.raises(PublishError, match="comment 1 has 70045 characters; GitHub takes at most 65536"):
        client.upsert_comments(REPO, PR, [too_long], MARKER)
    assert github.requests == []


def test_server_422_is_reported_with_its_detail(github, client):
    client.max_comment_chars = 10**6  # as if our limit were wrong: GitHub's answer must still read well
    with pytest.raises(PublishError) as caught:
        client.upsert_comments(REPO, PR, [render.marker_line(MARKER, 1, 1) + "\n" + "x" * 70_000], MARKER)
    assert str(caught.value) == ("GitHub API answered 422 Validation Failed: body is too long (maximum is 65536 "
                                 f"characters) for POST /repos/{REPO}/issues/{PR}/comments")


def test_body_without_marker_refused(client):
    with pytest.raises(ValueError, match="marker"):
        client.upsert_comments(REPO, PR, ["just text"], MARKER)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_is_a_clear_error():
    port = closed_port()
    client = GitHubClient(TOKEN, base_url=f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(PublishError) as caught:
        client.upsert_comments(REPO, PR, bodies(plan()), MARKER)
    assert str(caught.value) == f"cannot reach GitHub API at http://127.0.0.1:{port}/: connection refused"


def test_silent_server_times_out():
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        client = GitHubClient(TOKEN, base_url=f"http://127.0.0.1:{port}", timeout=0.5)
        with pytest.raises(PublishError, match=rf"GitHub API at http://127.0.0.1:{port}/ did not answer GET "
                                               rf"/repos/{REPO}/issues/{PR}/comments\?per_page=100 within 0.5 s"):
            client.upsert_comments(REPO, PR, bodies(plan()), MARKER)


@pytest.mark.parametrize("env,token_used,base", [
    ({"GITHUB_TOKEN": "tok-actions"}, "tok-actions", "https://api.github.com"),
    ({"GITHUB_TOKEN": "tok-actions", "GITOPS_GITHUB_TOKEN": "tok-gitops"}, "tok-gitops", "https://api.github.com"),
    ({"GITHUB_TOKEN": "tok-actions", "GITHUB_API_URL": "https://ghe.example/api/v3/"}, "tok-actions",
     "https://ghe.example/api/v3"),
])
def test_from_environment(env, token_used, base, github):
    client = GitHubClient.from_environment({**env, "GITHUB_API_URL": env.get("GITHUB_API_URL", "")})
    assert client.base_url == base
    assert token_used not in repr(client) and "Bearer" not in repr(client)
    # the token actually sent:
    pointed = GitHubClient.from_environment({**env, "GITHUB_API_URL": github.url})
    with pytest.raises(PublishError):
        pointed.set_status(REPO, SHA, "success", "x")
    assert github.requests[-1].headers["Authorization"] == f"Bearer {token_used}"


def test_no_token_is_a_settings_error():
    with pytest.raises(SettingsError, match="GITOPS_GITHUB_TOKEN or GITHUB_TOKEN"):
        GitHubClient.from_environment({})


def test_redirect_on_the_same_host_is_followed(github, client):
    ours = github.add_comment(REPO, PR, bodies(plan())[0])
    moved = f"/repos/{REPO}/issues/{PR}/comments?per_page=100&moved=1"  # as for a renamed repository
    github.fail_next(301, {"message": "Moved Permanently"}, method="GET", headers={"Location": github.url + moved})
    assert client.upsert_comments(REPO, PR, bodies(plan(8)), MARKER) == [ours]
    assert [r.path for r in github.requests][:2] == [f"/repos/{REPO}/issues/{PR}/comments?per_page=100", moved]


def test_redirect_to_another_host_keeps_the_token(github, client):
    github.fail_next(307, None, method="POST", headers={"Location": "http://198.51.100.7/collect"})
    with pytest.raises(PublishError, match=r"pointed to another host \(http://198.51.100.7:\)"):
        client.upsert_comments(REPO, PR, bodies(plan()), MARKER)


def test_next_link_to_another_host_is_not_followed(github, client):
    github.fail_next(200, [], method="GET", headers={"Link": '<http://198.51.100.7/steal?page=2>; rel="next"'})
    with pytest.raises(PublishError, match="pointed to another host"):
        client.upsert_comments(REPO, PR, bodies(plan()), MARKER)
    assert len(github.requests) == 1

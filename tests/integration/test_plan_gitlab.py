"""Posting plans on a GitLab merge request over real HTTP, against the loopback fake GitLab API."""
from __future__ import annotations

import pytest

from gitops.errors import PublishError, SettingsError
from gitops.plan import render
from gitops.plan.gitlab import GitLabClient
from gitops.plan.model import Change, FieldChange, Op, Plan

from fake_gitlab import FakeGitLab

pytestmark = pytest.mark.integration

TOKEN = "glpat-TEST-token-abcdef"
PROJECT, MR = "group/sub/config", 42
ENCODED = "group%2Fsub%2Fconfig"
MARKER = "gitops/prod"
SHA = "0123456789abcdef0123456789abcdef01234567"


def bodies(replicas: int = 3, objects: int = 1, limit: int = 1_000_000) -> list[str]:
    changes = tuple(Change(f"Deployment/prod/web-{i:04d}", Op.UPDATE,
                           tuple(FieldChange(f"spec.field{j}", "update", "a" * 50, f"{replicas}-{j}" * 20)
                                 for j in range(10)))
                    for i in range(objects))
    plan = Plan(stack="prod", ref="main", commit=SHA, changes=changes, unchanged=4)
    return render.markdown_comments(plan, marker=MARKER, limit=limit)


@pytest.fixture(params=[True, False], ids=["link", "x-next-page"])
def gitlab(request):
    with FakeGitLab(token=TOKEN, link_header=request.param) as fake:
        yield fake


@pytest.fixture
def client(gitlab):
    return GitLabClient(TOKEN, base_url=gitlab.url, timeout=5)


def test_create_edit_shrink(gitlab, client):
    ids = client.upsert_comments(PROJECT, MR, bodies(objects=30, limit=20_000), MARKER)
    assert len(ids) == 3 and [n["id"] for n in gitlab.notes_on(PROJECT, MR)] == ids
    assert gitlab.requests[0].path == (f"/api/v4/projects/{ENCODED}/merge_requests/{MR}/notes"
                                       "?per_page=100&sort=asc&order_by=created_at")
    assert gitlab.requests[-1].headers["PRIVATE-TOKEN"] == TOKEN

    one = bodies(replicas=5)
    assert client.upsert_comments(PROJECT, MR, one, MARKER) == ids[:1]
    assert [n["body"] for n in gitlab.notes_on(PROJECT, MR)] == one
    assert [r.method for r in gitlab.requests[-4:]] == ["GET", "PUT", "DELETE", "DELETE"]


def test_pagination_and_system_notes(gitlab, client):
    for i in range(150):
        gitlab.add_note(PROJECT, MR, f"note {i}", system=i % 2 == 0)
    gitlab.add_note(PROJECT, MR, bodies()[0], system=True)  # a system note is never ours
    ours = client.upsert_comments(PROJECT, MR, bodies(), MARKER)  # the 152nd: on page 2
    assert client.upsert_comments(PROJECT, MR, bodies(7), MARKER) == ours
    methods = [r.method for r in gitlab.requests]
    assert methods == ["GET", "GET", "POST", "GET", "GET", "PUT"]
    assert len(gitlab.notes_on(PROJECT, MR, system=True)) == 152


def test_status_maps_github_states_and_tolerates_repeats(gitlab, client):
    client.set_status(PROJECT, SHA, "failure", "manifests invalid: 2 problems", target_url="https://ci/1")
    client.set_status(PROJECT, SHA, "failure", "manifests invalid: 2 problems")  # a re-run job
    client.set_status(PROJECT, SHA, "success", "no changes; 3 unchanged", context="gitops/preview/prod")
    assert [(s["state"], s["name"]) for s in gitlab.statuses] == [("failed", "gitops/preview"),
                                                                   ("success", "gitops/preview/prod")]
    assert gitlab.statuses[0]["target_url"] == "https://ci/1"
    assert gitlab.requests[0].path == f"/api/v4/projects/{ENCODED}/statuses/{SHA}"
    with pytest.raises(ValueError):
        client.set_status(PROJECT, SHA, "bogus", "x")


def test_bad_token(gitlab):
    with pytest.raises(PublishError) as caught:
        GitLabClient("glpat-WRONG-1234", base_url=gitlab.url).upsert_comments(PROJECT, MR, bodies(), MARKER)
    message = str(caught.value)
    assert message.startswith(f"GitLab API answered 401 Unauthorized for GET /projects/{ENCODED}/merge_requests/")
    assert "glpat-WRONG-1234" not in message and "GITLAB_TOKEN" in message


def test_validation_message_is_readable(gitlab, client):
    client.max_comment_chars = 10**7
    with pytest.raises(PublishError, match=r"400 note is too long \(maximum is 1000000 characters\) for POST"):
        client.upsert_comments(PROJECT, MR, [render.marker_line(MARKER, 1, 1) + "\n" + "x" * 1_000_001], MARKER)


@pytest.mark.parametrize("env,base", [
    ({"GITLAB_TOKEN": "glpat-a"}, "https://gitlab.com/api/v4"),
    ({"GITLAB_TOKEN": "glpat-a", "CI_API_V4_URL": "https://git.example/api/v4"}, "https://git.example/api/v4"),
    ({"GITLAB_TOKEN": "glpat-a", "GITLAB_URL": "https://git.example/"}, "https://git.example/api/v4"),
    ({"GITOPS_GITLAB_TOKEN": "glpat-b", "GITLAB_URL": "https://git.example/api/v4"}, "https://git.example/api/v4"),
])
def test_from_environment(env, base):
    client = GitLabClient.from_environment(env)
    assert client.base_url == base and "glpat" not in repr(client)


def test_gitops_token_wins(gitlab):
    client = GitLabClient.from_environment({"GITLAB_TOKEN": "glpat-other", "GITOPS_GITLAB_TOKEN": TOKEN,
                                            "GITLAB_URL": gitlab.url.removesuffix("/api/v4")})
    assert client.upsert_comments(PROJECT, MR, bodies(), MARKER)


def test_no_token():
    with pytest.raises(SettingsError, match="GITOPS_GITLAB_TOKEN or GITLAB_TOKEN"):
        GitLabClient.from_environment({"CI_API_V4_URL": "https://git.example/api/v4"})

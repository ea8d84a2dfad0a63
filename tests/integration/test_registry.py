"""The registry client against a real registry (distribution 2.8.2), anonymous and behind a
token service, with faults injected by a proxy. Needs no Kubernetes control plane."""
from __future__ import annotations

import base64
import io
import json
import os
import sys
import uuid

import pytest
import requests

from gitops.errors import RegistryError, ToolError
from gitops.images.registry import Credentials, CredentialStore, RegistryClient

from registry_helpers import FaultProxy, TokenServer, push_image
from registry_server import RegistryServer, ensure_registry, registry_binary_path

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "correct-horse-battery"
WRONG_PASSWORD = "wrong-horse-staple"


def _progress(line: str) -> None:
    print(line, file=sys.stderr)


def _repo() -> str:
    return f"team/app-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def binary():
    return ensure_registry(progress=_progress)


@pytest.fixture(scope="module")
def anonymous(binary, tmp_path_factory):
    server = RegistryServer(binary, tmp_path_factory.mktemp("registry-anonymous")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    server = TokenServer(tmp_path_factory.mktemp("token-server"), USER, PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def secured(binary, tokens, tmp_path_factory):
    server = RegistryServer(binary, tmp_path_factory.mktemp("registry-token"), token=tokens.auth()).start()
    yield server
    server.stop()


@pytest.fixture
def proxy(anonymous):
    server = FaultProxy(anonymous.url).start()
    yield server
    server.stop()


def _client(**kw) -> RegistryClient:
    session = requests.Session()
    session.trust_env = False
    return RegistryClient(session=session, **kw)


def test_servers_stop_by_pid(binary, tmp_path):
    server = RegistryServer(binary, tmp_path).start()
    pid = server.pid
    assert requests.get(f"{server.url}/v2/", timeout=5).status_code == 200
    server.stop()
    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_port_taken_meanwhile_is_retried(binary, anonymous, tmp_path, monkeypatch):
    import registry_server as local_registry

    push_image(anonymous.url, _repo(), "1.0.0")
    real_free_ports = local_registry.free_ports
    offered = iter([[anonymous.port]])  # as if another registry bound it after the probe
    monkeypatch.setattr(local_registry, "free_ports", lambda count: next(offered, None) or real_free_ports(count))
    with RegistryServer(binary, tmp_path) as second:
        assert second.port != anonymous.port
        # Really the new, empty registry, not the one that holds the port.
        assert requests.get(f"{second.url}/v2/_catalog", timeout=5).json() == {"repositories": []}


def test_fetch_refuses_a_download_that_does_not_match_the_pin(tmp_path, monkeypatch):
    class Tampered:
        def get(self, url, **kw):
            reply = requests.Response()
            reply.status_code, reply.raw = 200, io.BytesIO(b"not the pinned package")
            return reply

    monkeypatch.setenv("GITOPS_CACHE", str(tmp_path))
    lines: list[str] = []
    with pytest.raises(ToolError, match="expected the pinned"):
        ensure_registry(progress=lines.append, session=Tampered())
    assert lines and lines[0].startswith("downloading docker-registry 2.8.2")
    assert not registry_binary_path().exists()
    assert list(registry_binary_path().parent.iterdir()) == []  # the staging folder is gone too


def test_anonymous_registry_lists_pushed_tags(anonymous):
    repo = _repo()
    for tag in ("1.0.0", "1.1.0", "latest"):
        push_image(anonymous.url, repo, tag)
    client = _client()
    assert sorted(client.list_tags(f"{anonymous.host}/{repo}")) == ["1.0.0", "1.1.0", "latest"]
    assert client.requests_made[anonymous.host] == 1


def test_missing_repository_is_reported(anonymous):
    with pytest.raises(RegistryError, match="repository not found") as caught:
        _client().list_tags(f"{anonymous.host}/team/never-pushed")
    assert (caught.value.host, caught.value.repository) == (anonymous.host, "team/never-pushed")


def test_token_auth_lists_tags_and_reuses_the_token(secured, tokens):
    repo = _repo()
    push_image(secured.url, repo, "1.0.0", auth=(USER, PASSWORD))
    push_image(secured.url, repo, "1.2.0", auth=(USER, PASSWORD))
    client = _client(credentials=CredentialStore({secured.host: Credentials(USER, PASSWORD)}))
    before = tokens.token_requests

    client.begin_scan()
    assert sorted(client.list_tags(f"{secured.host}/{repo}")) == ["1.0.0", "1.2.0"]
    first_scan = client.requests_made[secured.host]
    client.begin_scan()
    assert sorted(client.list_tags(f"{secured.host}/{repo}")) == ["1.0.0", "1.2.0"]

    assert tokens.token_requests - before == 1
    assert tokens.scopes[-1] == f"repository:{repo}:pull"
    # Challenge, token, tag list; then the cached token alone: one request.
    assert first_scan == 3
    assert client.requests_made[secured.host] == 4


def test_expired_token_is_replaced_without_a_new_challenge(secured, tokens):
    repo = _repo()
    push_image(secured.url, repo, "1.0.0", auth=(USER, PASSWORD))
    now = [1000.0]
    client = _client(credentials=CredentialStore({secured.host: Credentials(USER, PASSWORD)}),
                     clock=lambda: now[0])
    client.list_tags(f"{secured.host}/{repo}")
    before_tokens, before_requests = tokens.token_requests, client.requests_made[secured.host]
    now[0] += tokens.expires_in  # past the token's lifetime
    client.begin_scan()
    assert client.list_tags(f"{secured.host}/{repo}") == ["1.0.0"]
    assert tokens.token_requests - before_tokens == 1
    assert client.requests_made[secured.host] - before_requests == 2  # token, tag list


def test_wrong_password_is_unauthorized_and_never_shown(secured):
    repo = _repo()
    push_image(secured.url, repo, "1.0.0", auth=(USER, PASSWORD))
    client = _client(credentials=CredentialStore({secured.host: Credentials(USER, WRONG_PASSWORD)}))
    with pytest.raises(RegistryError, match="unauthorized") as caught:
        client.list_tags(f"{secured.host}/{repo}")
    error = caught.value
    assert (error.host, error.repository, error.retry_after) == (secured.host, repo, None)
    for text in (str(error), repr(error), repr(client.credentials), repr(error.__cause__)):
        assert WRONG_PASSWORD not in text


def test_anonymous_client_is_refused_by_a_token_registry(secured):
    repo = _repo()
    push_image(secured.url, repo, "1.0.0", auth=(USER, PASSWORD))
    with pytest.raises(RegistryError, match="unauthorized: the registry refused anonymous access"):
        _client().list_tags(f"{secured.host}/{repo}")


def test_registry_verifies_the_token_signature(secured, tokens, tmp_path):
    # Proves the token setup is real: a token from an untrusted key is refused.
    repo = _repo()
    push_image(secured.url, repo, "1.0.0", auth=(USER, PASSWORD))
    url = f"{secured.url}/v2/{repo}/tags/list"
    scope = [f"repository:{repo}:pull"]
    forger = TokenServer(tmp_path, USER, PASSWORD, service=tokens.service, issuer=tokens.issuer)
    forged = requests.get(url, headers={"Authorization": f"Bearer {forger.issue(USER, scope)}"}, timeout=5)
    genuine = requests.get(url, headers={"Authorization": f"Bearer {tokens.issue(USER, scope)}"}, timeout=5)
    assert (forged.status_code, genuine.status_code) == (401, 200)


def test_credentials_from_docker_config(secured, tmp_path):
    repo = _repo()
    push_image(secured.url, repo, "2.0.0", auth=(USER, PASSWORD))
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {f"http://{secured.host}": {"auth": auth}}}))
    store = CredentialStore.from_environment({"DOCKER_CONFIG": str(tmp_path), "HOME": str(tmp_path)})
    assert _client(credentials=store).list_tags(f"{secured.host}/{repo}") == ["2.0.0"]


def test_pagination_follows_link_headers(anonymous, proxy):
    repo = _repo()
    expected = sorted(f"0.{i}.0" for i in range(25))
    for tag in expected:
        push_image(anonymous.url, repo, tag)
    proxy.paginate_tags = True  # distribution 2.8 does not page tag lists itself
    client = _client(page_size=10)
    assert client.list_tags(f"{proxy.host}/{repo}") == expected
    assert proxy.tag_list_requests(repo) == 3


@pytest.fixture
def pushed(anonymous):
    repo = _repo()
    push_image(anonymous.url, repo, "1.0.0")
    return repo


@pytest.mark.parametrize(("mode", "message"), [
    ("500", r"the registry failed \(HTTP 500\)"),
    ("401", "unauthorized: the registry wants a password and none is configured"),
    ("down", "cannot reach 127.0.0.1:[0-9]+: connection refused"),
])
def test_fault_is_reported_then_recovered(proxy, pushed, mode, message):
    client = _client()
    image = f"{proxy.host}/{pushed}"
    assert client.list_tags(image) == ["1.0.0"]
    proxy.mode = mode
    client.begin_scan()
    with pytest.raises(RegistryError, match=message) as caught:
        client.list_tags(image)
    assert (caught.value.host, caught.value.repository, caught.value.retry_after) == (proxy.host, pushed, None)
    proxy.mode = "ok"
    client.begin_scan()
    assert client.list_tags(image) == ["1.0.0"]


def test_rejected_basic_credentials_are_unauthorized(proxy, pushed):
    client = _client(credentials=CredentialStore({proxy.host: Credentials(USER, WRONG_PASSWORD)}))
    proxy.mode = "401"
    with pytest.raises(RegistryError, match="unauthorized: the registry refused the configured credentials") as caught:
        client.list_tags(f"{proxy.host}/{pushed}")
    assert WRONG_PASSWORD not in str(caught.value)
    assert proxy.tag_list_requests(pushed) == 2  # anonymous, then once with the password


def test_short_429_is_retried_once_inside_the_call(proxy, pushed):
    slept: list[float] = []
    client = _client(sleep=slept.append)
    proxy.mode, proxy.failures_left = "429", 1
    assert client.list_tags(f"{proxy.host}/{pushed}") == ["1.0.0"]
    assert slept == [2.0]
    assert proxy.tag_list_requests(pushed) == 2


def test_persistent_429_carries_retry_after(proxy, pushed):
    slept: list[float] = []
    client = _client(sleep=slept.append)
    proxy.mode = "429"
    with pytest.raises(RegistryError, match="rate limited") as caught:
        client.list_tags(f"{proxy.host}/{pushed}")
    assert caught.value.retry_after == 2.0
    assert slept == [2.0] and proxy.tag_list_requests(pushed) == 2


def test_long_429_is_left_to_the_caller(proxy, pushed):
    slept: list[float] = []
    client = _client(sleep=slept.append, max_retry_wait=5)
    proxy.mode, proxy.retry_after = "429", "120"
    with pytest.raises(RegistryError) as caught:
        client.list_tags(f"{proxy.host}/{pushed}")
    assert caught.value.retry_after == 120.0
    assert slept == [] and proxy.tag_list_requests(pushed) == 1
    proxy.mode = "ok"
    client.begin_scan()
    assert client.list_tags(f"{proxy.host}/{pushed}") == ["1.0.0"]


def test_request_budget_is_enforced_per_scan(proxy, anonymous):
    repos = [_repo() for _ in range(3)]
    for repo in repos:
        push_image(anonymous.url, repo, "1.0.0")
    client = _client(budget_per_scan=2)
    assert client.list_tags(f"{proxy.host}/{repos[0]}") == ["1.0.0"]
    assert client.list_tags(f"{proxy.host}/{repos[1]}") == ["1.0.0"]
    with pytest.raises(RegistryError, match=f"request budget of 2 for host {proxy.host} used up"):
        client.list_tags(f"{proxy.host}/{repos[2]}")
    assert proxy.tag_list_requests(repos[2]) == 0  # refused before sending
    client.begin_scan()
    assert client.list_tags(f"{proxy.host}/{repos[2]}") == ["1.0.0"]
    assert client.requests_made[proxy.host] == 3


def test_budget_stops_endless_pagination(proxy, anonymous):
    repo = _repo()
    for i in range(5):
        push_image(anonymous.url, repo, f"1.{i}.0")
    proxy.paginate_tags = True
    client = _client(page_size=1, budget_per_scan=3)
    with pytest.raises(RegistryError, match="request budget of 3"):
        client.list_tags(f"{proxy.host}/{repo}")
    assert proxy.tag_list_requests(repo) == 3

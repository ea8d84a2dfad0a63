"""The registry client's pure parts, and its auth, retry and budget logic against a scripted session."""
from __future__ import annotations

import base64
import email.utils
import json
import time
from dataclasses import dataclass

import pytest
import requests

from gitops.errors import RegistryError, SettingsError
from gitops.images.registry import (
    Challenge,
    Credentials,
    CredentialStore,
    RegistryClient,
    _split_image,
    canonical_host,
    next_link,
    parse_challenge,
    parse_retry_after,
    uses_http,
)

SECRET = "s3cr3t-pa55"


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(("header", "expected"), [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
     Challenge("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                          "scope": "repository:library/nginx:pull"})),
    ('bearer realm="http://127.0.0.1:1/token", service=reg', Challenge("bearer", {"realm": "http://127.0.0.1:1/token",
                                                                                "service": "reg"})),
    ('Basic realm="Registry Realm"', Challenge("basic", {"realm": "Registry Realm"})),
    ('Basic realm="say \\"hi\\""', Challenge("basic", {"realm": 'say "hi"'})),
    # Two challenges joined by requests: Bearer wins wherever it stands.
    ('Basic realm="b", Bearer realm="https://t/token",service="s"',
     Challenge("bearer", {"realm": "https://t/token", "service": "s"})),
    ("Basic", Challenge("basic", {})),
    ('Negotiate abc, Digest realm="x"', None),
    ("", None),
    (None, None),
    ('=garbage"', None),
])
def test_parse_challenge(header, expected):
    got = parse_challenge(header)
    if expected is None:
        assert got is None
    else:
        assert (got.scheme, dict(got.params)) == (expected.scheme, dict(expected.params))


@pytest.mark.parametrize(("header", "expected"), [
    ('</v2/a/tags/list?last=x&n=10>; rel="next"', "https://r.example/v2/a/tags/list?last=x&n=10"),
    ("<https://other.example/v2/a/tags/list?last=x>; rel=next", "https://other.example/v2/a/tags/list?last=x"),
    ('</prev>; rel="prev", </v2/a/tags/list?n=2&last=b>; rel="next"', "https://r.example/v2/a/tags/list?n=2&last=b"),
    ('</v2/a/tags/list?last=x>; title="t"; rel="next last"', "https://r.example/v2/a/tags/list?last=x"),
    ('</prev>; rel="prev"', None),
    ("", None),
    (None, None),
])
def test_next_link(header, expected):
    assert next_link(header, "https://r.example/v2/a/tags/list?n=10") == expected


NOW = 1_700_000_000.0


@pytest.mark.parametrize(("value", "expected"), [
    ("2", 2.0),
    (" 120 ", 120.0),
    ("0", 0.0),
    (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
    (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),  # a date in the past: go ahead now
    ("-1", None),
    ("soon", None),
    ("", None),
    (None, None),
])
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(("image", "expected"), [
    ("nginx", ("registry-1.docker.io", "library/nginx")),
    ("nginx:1.25", ("registry-1.docker.io", "library/nginx")),
    ("docker.io/nginx", ("registry-1.docker.io", "library/nginx")),
    ("index.docker.io/bitnami/redis", ("registry-1.docker.io", "bitnami/redis")),
    ("bitnami/redis@sha256:abc", ("registry-1.docker.io", "bitnami/redis")),
    ("ghcr.io/org/team/app:v1", ("ghcr.io", "org/team/app")),
    ("127.0.0.1:5000/app", ("127.0.0.1:5000", "app")),
    ("localhost/app", ("localhost", "app")),
    ("[::1]:5000/a/b", ("[::1]:5000", "a/b")),
])
def test_split_image(image, expected):
    assert _split_image(image) == expected


@pytest.mark.parametrize("image", ["", "UPPER/case", "ghcr.io/", "a//b", "nginx:"])
def test_split_image_rejects_non_names(image):
    with pytest.raises(RegistryError, match="is not an image name"):
        _split_image(image)


@pytest.mark.parametrize(("host", "insecure", "http"), [
    ("localhost:5000", (), True),
    ("127.0.0.1:41234", (), True),
    ("[::1]:5000", (), True),
    ("localhost", (), True),
    ("registry.example.com", (), False),
    ("registry.example.com:5000", ("registry.example.com",), True),
    ("registry.example.com:5000", ("registry.example.com:5000",), True),
    ("registry.example.com:5000", ("registry.example.com:6000",), False),
    ("10.0.0.1:5000", ("other",), False),
])
def test_uses_http(host, insecure, http):
    assert uses_http(host, insecure) is http


@pytest.mark.parametrize(("written", "canonical"), [
    ("https://index.docker.io/v1/", "docker.io"),
    ("registry-1.docker.io", "docker.io"),
    ("Docker.IO", "docker.io"),
    ("http://127.0.0.1:5000", "127.0.0.1:5000"),
    ("ghcr.io/", "ghcr.io"),
])
def test_canonical_host(written, canonical):
    assert canonical_host(written) == canonical


# -------------------------------------------------------------- credentials


def test_credentials_repr_redacts_the_password():
    creds = Credentials("bob", SECRET)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds]), repr(CredentialStore({"h": creds}))):
        assert SECRET not in text
    assert "bob" in repr(creds)
    assert creds.password == SECRET


def _docker_config(tmp_path, auths):
    (tmp_path / "config.json").write_text(json.dumps({"auths": auths, "credsStore": "desktop"}))
    return {"DOCKER_CONFIG": str(tmp_path)}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_docker_config_entries(tmp_path):
    env = _docker_config(tmp_path, {
        "https://index.docker.io/v1/": {"auth": _b64(f"hub-user:{SECRET}:with-colon")},
        "ghcr.io": {"username": "gh", "password": "tok"},
        "quay.io": {},  # kept by a credential helper: not supported, left anonymous
        "other.example": {"identitytoken": "refresh"},
    })
    store = CredentialStore.from_environment(env)
    assert store.lookup("registry-1.docker.io") == Credentials("hub-user", f"{SECRET}:with-colon")
    assert store.lookup("ghcr.io") == Credentials("gh", "tok")
    assert store.lookup("quay.io") is None and store.lookup("other.example") is None
    assert store.hosts == ("docker.io", "ghcr.io")


def test_environment_overrides_docker_config(tmp_path):
    env = _docker_config(tmp_path, {"ghcr.io": {"auth": _b64("old:old")}, "quay.io": {"auth": _b64("q:q")}})
    env["GITOPS_REGISTRY_CREDENTIALS"] = json.dumps({
        "ghcr.io": {"username": "new", "password": SECRET},
        "http://localhost:5000": "local:pw",
    })
    store = CredentialStore.from_environment(env)
    assert store.lookup("ghcr.io") == Credentials("new", SECRET)
    assert store.lookup("quay.io") == Credentials("q", "q")
    assert store.lookup("localhost:5000") == Credentials("local", "pw")
    assert store.lookup("localhost:5001") is None


def test_docker_config_found_under_home(tmp_path):
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"auths": {"ghcr.io": {"auth": _b64("u:p")}}}))
    assert CredentialStore.from_environment({"HOME": str(tmp_path)}).lookup("ghcr.io") == Credentials("u", "p")


def test_no_configuration_means_no_credentials(tmp_path):
    assert CredentialStore.from_environment({"HOME": str(tmp_path)}).hosts == ()


@pytest.mark.parametrize("value", [
    f'{{"ghcr.io": "{SECRET}"',          # not JSON
    f'["{SECRET}"]',                     # not an object
    f'{{"ghcr.io": "{SECRET}"}}',        # no colon: not user:password
    f'{{"ghcr.io": {{"password": "{SECRET}"}}}}',
])
def test_bad_environment_credentials_never_echo_secrets(value):
    with pytest.raises(SettingsError, match="GITOPS_REGISTRY_CREDENTIALS") as caught:
        CredentialStore.from_environment({"GITOPS_REGISTRY_CREDENTIALS": value, "HOME": "/nonexistent"})
    assert SECRET not in str(caught.value)


def test_bad_docker_config_auth_never_echoes_it(tmp_path):
    env = _docker_config(tmp_path, {"ghcr.io": {"auth": SECRET}})
    with pytest.raises(SettingsError, match=r"auths.ghcr.io.auth") as caught:
        CredentialStore.from_environment(env)
    assert SECRET not in str(caught.value)


def test_unreadable_docker_config_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(SettingsError, match=str(tmp_path / "config.json")):
        CredentialStore.from_environment({"DOCKER_CONFIG": str(tmp_path)})


# ------------------------------------------------------ client, scripted


@dataclass
class Call:
    url: str
    params: dict | None
    auth: tuple | None
    headers: dict


def response(status: int, body: object = None, headers: dict | None = None, url: str = "") -> requests.Response:
    r = requests.Response()
    r.status_code, r.url = status, url
    r._content = json.dumps(body).encode() if body is not None else b""
    r.headers.update(headers or {})
    return r


class ScriptedSession:
    """Answers each GET with the next scripted reply; a callable reply sees the call."""

    def __init__(self, *replies):
        self.replies, self.calls = list(replies), []

    def get(self, url, params=None, auth=None, timeout=None, headers=None):
        call = Call(url, params, auth if isinstance(auth, tuple) else None, dict(headers or {}))
        self.calls.append(call)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        reply = reply(call) if callable(reply) else reply
        reply.url = reply.url or url
        return reply


HOST = "registry.example.com"
IMAGE = f"{HOST}/team/app"
TAGS_URL = f"https://{HOST}/v2/team/app/tags/list?n=1000"
BEARER = {"WWW-Authenticate": f'Bearer realm="https://auth.example.com/token",service="{HOST}"'}


def client_for(session, creds=None, **kw):
    store = CredentialStore({HOST: creds} if creds else {})
    return RegistryClient(store, session=session, **kw)


def test_basic_auth_is_sent_up_front_once_learned():
    session = ScriptedSession(
        response(401, headers={"WWW-Authenticate": 'Basic realm="r"'}),
        response(200, {"tags": ["1"]}),
        response(200, {"tags": ["1", "2"]}),
    )
    client = client_for(session, Credentials("bob", SECRET))
    assert client.list_tags(IMAGE) == ["1"]
    client.begin_scan()
    assert client.list_tags(IMAGE) == ["1", "2"]
    expected = "Basic " + _b64(f"bob:{SECRET}")
    assert [c.headers.get("Authorization") for c in session.calls] == [None, expected, expected]
    assert session.calls[0].url == TAGS_URL


def test_rejected_basic_password_is_unauthorized_without_echo():
    session = ScriptedSession(response(401, headers={"WWW-Authenticate": 'Basic realm="r"'}),
                              response(401, headers={"WWW-Authenticate": 'Basic realm="r"'}))
    with pytest.raises(RegistryError, match="unauthorized: the registry refused the configured credentials") as caught:
        client_for(session, Credentials("bob", SECRET)).list_tags(IMAGE)
    assert SECRET not in str(caught.value) and caught.value.repository == "team/app"


def test_token_lifetime_defaults_to_60_s_minus_margin():
    now = [0.0]
    session = ScriptedSession(
        response(401, headers=BEARER),
        response(200, {"access_token": "t1"}),  # no expires_in: 60 s, used for 50
        response(200, {"tags": ["a"]}),
        response(200, {"tags": ["a"]}),
        response(200, {"access_token": "t2", "expires_in": 300}),
        response(200, {"tags": ["a"]}),
    )
    client = client_for(session, Credentials("bob", SECRET), clock=lambda: now[0])
    client.list_tags(IMAGE)
    now[0] = 49.0
    client.list_tags(IMAGE)
    now[0] = 51.0
    client.list_tags(IMAGE)
    token_call = session.calls[1]
    assert token_call.url == "https://auth.example.com/token"
    assert token_call.params == {"scope": "repository:team/app:pull", "service": HOST}
    assert token_call.auth == ("bob", SECRET)
    assert [c.headers.get("Authorization") for c in session.calls[2:]] == [
        "Bearer t1", "Bearer t1", None, "Bearer t2"]
    assert client.requests_made[HOST] == 6


def test_anonymous_token_request_sends_no_credentials():
    session = ScriptedSession(response(401, headers=BEARER), response(200, {"token": "anon"}),
                              response(200, {"tags": []}))
    assert client_for(session).list_tags(IMAGE) == []
    assert session.calls[1].auth is None


def test_token_service_failure_is_named():
    session = ScriptedSession(response(401, headers=BEARER), response(503, {}, {"Retry-After": "7"}))
    with pytest.raises(RegistryError, match=r"the token service auth.example.com failed \(HTTP 503\)") as caught:
        client_for(session).list_tags(IMAGE)
    assert caught.value.retry_after == 7.0


def test_429_with_http_date_is_retried_once():
    slept = []
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    session = ScriptedSession(response(429, headers={"Retry-After": when}), response(200, {"tags": ["x"]}))
    assert client_for(session, sleep=slept.append).list_tags(IMAGE) == ["x"]
    assert len(slept) == 1 and 1.0 <= slept[0] <= 3.0


def test_503_retry_after_is_passed_on_without_retrying():
    session = ScriptedSession(response(503, headers={"Retry-After": "3"}))
    with pytest.raises(RegistryError, match=r"failed \(HTTP 503\); retry after 3 s") as caught:
        client_for(session).list_tags(IMAGE)
    assert (caught.value.host, caught.value.retry_after) == (HOST, 3.0)


def test_pages_follow_absolute_links_on_the_same_host():
    nxt = f"https://{HOST}/v2/team/app/tags/list?last=b&n=2"
    session = ScriptedSession(response(200, {"tags": ["a", "b"]}, {"Link": f'<{nxt}>; rel="next"'}),
                              response(200, {"tags": ["b", "c"]}))
    assert client_for(session).list_tags(IMAGE) == ["a", "b", "c"]
    assert session.calls[1].url == nxt


def test_links_to_other_hosts_are_refused():
    session = ScriptedSession(response(200, {"tags": ["a"]}, {"Link": '<https://evil.example/x>; rel="next"'}))
    with pytest.raises(RegistryError, match="next-page link points to another host"):
        client_for(session, Credentials("bob", SECRET)).list_tags(IMAGE)
    assert len(session.calls) == 1


@pytest.mark.parametrize(("reply", "message"), [
    (requests.ConnectTimeout("x"), f"no answer from {HOST} within 10 s"),
    (requests.ConnectionError("HTTPSConnectionPool(...): Max retries exceeded (Caused by NewConnectionError("
                              "'<conn>: Failed to establish a new connection: [Errno 111] Connection refused'))"),
     f"cannot reach {HOST}: connection refused"),
    (response(404, {}), "repository not found"),
    (response(403, {}), "access denied by the registry"),
    (response(200, ["not", "an", "object"]), "not the JSON the API defines"),
    (response(200, {"tags": [1, 2]}), "not the JSON the API defines"),
    (response(401, {}), "unauthorized, and the registry sent no challenge"),
])
def test_failures_become_registry_errors(reply, message):
    with pytest.raises(RegistryError, match=message) as caught:
        client_for(ScriptedSession(reply)).list_tags(IMAGE)
    assert (caught.value.host, caught.value.repository) == (HOST, "team/app")
    assert caught.value.__cause__ is None  # nothing from the HTTP layer is carried along


def test_budget_counts_token_requests_and_resets_per_scan():
    session = ScriptedSession(response(401, headers=BEARER), response(200, {"token": "t", "expires_in": 300}),
                              response(200, {"tags": ["a"]}))
    client = client_for(session, budget_per_scan=2)
    with pytest.raises(RegistryError, match=f"request budget of 2 for host {HOST} used up") as caught:
        client.list_tags(IMAGE)
    assert len(session.calls) == 2 and caught.value.host == HOST
    client.begin_scan()
    assert client.list_tags(IMAGE) == ["a"]  # the token survived; one request
    assert dict(client.requests_made) == {HOST: 3}

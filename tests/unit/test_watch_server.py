"""HMAC verification, the HTTP endpoints on loopback, and the metrics text."""
import json
import urllib.error
import urllib.request

import pytest

from gitops.errors import SettingsError
from gitops.watch.metrics import Metrics
from gitops.watch.server import Endpoints, parse_listen, serve, sign, verify_signature

SECRET = b"webhook-secret"
BODY = b'{"ref": "refs/heads/main"}'


@pytest.mark.parametrize("header,ok", [
    (sign(SECRET, BODY), True),
    (sign(SECRET, BODY).upper().replace("SHA256=", "sha256="), True),
    (sign(b"other", BODY), False),
    (sign(SECRET, BODY + b" "), False),
    (sign(SECRET, BODY).removeprefix("sha256="), False),
    ("sha1=" + sign(SECRET, BODY).removeprefix("sha256="), False),
    ("", False),
    (None, False),
])
def test_verify_signature(header, ok):
    assert verify_signature(SECRET, BODY, header) is ok


def test_no_secret_never_verifies():
    assert not verify_signature(b"", BODY, sign(b"", BODY))


@pytest.mark.parametrize("text", ["0.0.0.0:80", "example.com:80", "127.0.0.1", ":8080"])
def test_listen_is_loopback_only(text):
    with pytest.raises(SettingsError):
        parse_listen(text)


def test_metrics_rendering():
    m = Metrics()
    for _ in range(3):
        m.cycle("nothing")
    m.error("source")
    m.registry_requests("ghcr.io", 4)
    m.record_up(2.5, {"create": 2, "same": 5})
    m.record_up(1.5, {"update": 1})
    text = m.render()
    assert 'gitops_watch_cycles_total{result="nothing"} 3' in text
    assert "gitops_watch_up_duration_seconds_sum 4" in text
    assert "gitops_watch_up_duration_seconds_count 2" in text
    assert 'gitops_watch_changes_total{op="create"} 2' in text
    assert 'gitops_watch_changes_total{op="update"} 1' in text
    assert 'op="same"' not in text
    assert 'gitops_watch_errors_total{kind="source"} 1' in text
    assert 'gitops_watch_registry_requests_total{host="ghcr.io"} 4' in text
    assert "# TYPE gitops_watch_up_duration_seconds summary" in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.split(" ")) == 2


def _request(port, path, body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers or {},
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_endpoints():
    triggered, webhooks = [], []
    server = serve(("127.0.0.1", 0), Endpoints(status=lambda: {"applied_commit": "abc"}, metrics=lambda: "m 1\n",
                                                trigger=lambda: triggered.append(1), on_webhook=webhooks.append,
                                                secret=SECRET))
    try:
        port = server.server_address[1]
        assert server.server_address[0] == "127.0.0.1"
        assert _request(port, "/healthz") == (200, b"ok\n")
        assert json.loads(_request(port, "/status")[1]) == {"applied_commit": "abc"}
        assert _request(port, "/metrics") == (200, b"m 1\n")
        assert _request(port, "/hooks/git", BODY)[0] == 401
        assert _request(port, "/hooks/git", BODY, {"X-Hub-Signature-256": sign(b"wrong", BODY)})[0] == 401
        assert triggered == []
        assert _request(port, "/hooks/git", BODY, {"X-Hub-Signature-256": sign(SECRET, BODY)})[0] == 202
        assert triggered == [1]
        assert webhooks == [False, False, True]
        assert _request(port, "/nope")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_registry_hook_scans_images_and_is_signed_like_the_git_hook():
    triggered, images, webhooks = [], [], []
    server = serve(("127.0.0.1", 0), Endpoints(status=dict, metrics=str, trigger=lambda: triggered.append(1),
                                                on_webhook=webhooks.append, secret=SECRET,
                                                trigger_images=lambda: images.append(1)))
    try:
        port = server.server_address[1]
        push = b'{"events": [{"action": "push", "target": {"repository": "demo/web", "tag": "1.2.0"}}]}'
        assert _request(port, "/hooks/registry", push)[0] == 401
        assert _request(port, "/hooks/registry", push, {"X-Hub-Signature-256": sign(b"wrong", push)})[0] == 401
        assert _request(port, "/hooks/registry", push, {"X-Hub-Signature-256": sign(SECRET, BODY)})[0] == 401
        assert images == []
        status, body = _request(port, "/hooks/registry", push, {"X-Hub-Signature-256": sign(SECRET, push)})
        assert (status, json.loads(body)) == (202, {"accepted": True})
        assert images == [1] and triggered == []
        assert webhooks == [False, False, False, True]
        assert _request(port, "/hooks/git", BODY, {"X-Hub-Signature-256": sign(SECRET, BODY)})[0] == 202
        assert images == [1] and triggered == [1]
        assert _request(port, "/hooks/nope", push, {"X-Hub-Signature-256": sign(SECRET, push)})[0] == 404
        assert _request(port, "/hooks/registry")[0] == 404  # GET: only POST is a hook
        assert images == [1] and triggered == [1] and webhooks == [False, False, False, True, True]
    finally:
        server.shutdown()
        server.server_close()


def test_registry_hook_is_unknown_when_image_scanning_is_not_wired():
    server = serve(("127.0.0.1", 0), Endpoints(status=dict, metrics=str, trigger=lambda: None,
                                                on_webhook=lambda ok: None, secret=SECRET))
    try:
        port = server.server_address[1]
        assert _request(port, "/hooks/registry", BODY, {"X-Hub-Signature-256": sign(SECRET, BODY)})[0] == 404
    finally:
        server.shutdown()
        server.server_close()

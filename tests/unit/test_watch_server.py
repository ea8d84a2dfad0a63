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
    m.count("cycles", "nothing", 3)
    m.count("errors", "source")
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

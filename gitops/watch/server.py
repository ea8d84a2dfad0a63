"""The watcher's HTTP endpoints, on loopback only: health, status, metrics, and the git and
registry webhooks (both HMAC-signed like GitHub's).

Runs in its own threads; talks to the loop only through callables (status, metrics, trigger),
so a slow scrape never delays a cycle and a webhook only wakes the loop, never runs `up` itself.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import SettingsError

SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_BODY = 1 << 20  # GitHub caps payloads at 25 MB, but a ref-moved ping needs nothing near that


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """GitHub's form: `sha256=<hex of HMAC-SHA256(secret, body)>`, compared in constant time."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.removeprefix("sha256=").strip().lower().encode())


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        # Loopback only: the endpoints have no TLS and /status is not meant for the network.
        raise SettingsError(f"--listen must be 127.0.0.1:PORT, not {text!r}")
    return "127.0.0.1", int(port)


@dataclass(frozen=True)
class Endpoints:
    status: Callable[[], dict[str, Any]]
    metrics: Callable[[], str]
    trigger: Callable[[], None]
    on_webhook: Callable[[bool], None]
    secret: bytes | None
    trigger_images: Callable[[], None] | None = None
    """POST /hooks/registry: scan the registries now (a new image was pushed)."""


def serve(listen: tuple[str, int], endpoints: Endpoints) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; `server.shutdown()` stops it."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "gitops-watch"

        def log_message(self, format: str, *args: object) -> None:  # the loop logs what matters
            pass

        def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, value: object) -> None:
            self._send(code, (json.dumps(value, indent=2) + "\n").encode())

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
            elif self.path == "/status":
                self._json(200, endpoints.status())
            elif self.path == "/metrics":
                self._send(200, endpoints.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            hooks = {"/hooks/git": endpoints.trigger, "/hooks/registry": endpoints.trigger_images}
            action = hooks.get(self.path)
            if action is None:
                self._json(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"error": "payload too large"})
                return
            body = self.rfile.read(length) if length else b""
            if not endpoints.secret:
                endpoints.on_webhook(False)
                self._json(403, {"error": "webhooks are off: set GITOPS_WEBHOOK_SECRET"})
                return
            if not verify_signature(endpoints.secret, body, self.headers.get(SIGNATURE_HEADER)):
                endpoints.on_webhook(False)
                self._json(401, {"error": f"missing or wrong {SIGNATURE_HEADER}"})
                return
            endpoints.on_webhook(True)
            action()
            self._json(202, {"accepted": True})

    server = ThreadingHTTPServer(listen, Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="gitops-watch-http", daemon=True).start()
    return server

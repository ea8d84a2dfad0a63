"""Real registry plumbing for tests: push images over the HTTP API, a Docker token server,
and a proxy that injects faults (down, 500, 401, 429) in front of a registry.

Every server binds 127.0.0.1 on a port the kernel picks and runs in a daemon thread of the
test process; `stop()` shuts it down and joins the thread.
"""
from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import secrets
import tarfile
import threading
import time
from collections import Counter
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gitops.images.registry import parse_challenge

from registry_server import TokenAuth

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


# ----------------------------------------------------------------- pushing


def push_image(base_url: str, repo: str, tag: str, auth: tuple[str, str] | None = None) -> str:
    """Push a minimal valid image (one small layer, a config naming the tag); returns its digest.

    Answers a token challenge with `repository:<repo>:pull,push`, or a basic one, with `auth`.
    """
    layer, diff_id = _layer()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        # The tag in the config gives every tag its own manifest digest, as real images have.
        "config": {"Labels": {"org.example.tag": tag}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }, sort_keys=True).encode()
    with requests.Session() as session:
        session.trust_env = False
        pusher = _Pusher(session, base_url.rstrip("/"), repo, auth)
        pusher.upload(layer)
        pusher.upload(config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": _DOCKER_CONFIG, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": _DOCKER_LAYER, "size": len(layer), "digest": _digest(layer)}],
        }).encode()
        response = pusher.call("PUT", f"/v2/{repo}/manifests/{tag}", data=manifest,
                               headers={"Content-Type": DOCKER_MANIFEST})
        _expect(response, 201)
        return response.headers["Docker-Content-Digest"]


class _Pusher:
    def __init__(self, session: requests.Session, base_url: str, repo: str, auth: tuple[str, str] | None):
        self.session, self.base_url, self.repo, self.auth = session, base_url, repo, auth
        self.authorization: dict[str, str] = {}

    def call(self, method: str, url: str, **kw) -> requests.Response:
        url = urljoin(self.base_url + "/", url)
        headers = kw.pop("headers", {})
        response = self.session.request(method, url, headers={**headers, **self.authorization}, timeout=30, **kw)
        if response.status_code != 401:
            return response
        challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
        if challenge is None:
            return response
        if challenge.scheme == "basic":
            raw = ":".join(self.auth or ("", "")).encode()
            self.authorization = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        else:
            params = {"scope": f"repository:{self.repo}:pull,push", "service": challenge.params.get("service", "")}
            token = self.session.get(challenge.params["realm"], params=params, auth=self.auth, timeout=30)
            _expect(token, 200)
            self.authorization = {"Authorization": f"Bearer {token.json()['token']}"}
        return self.session.request(method, url, headers={**headers, **self.authorization}, timeout=30, **kw)

    def upload(self, blob: bytes) -> None:
        digest = _digest(blob)
        if self.call("HEAD", f"/v2/{self.repo}/blobs/{digest}").status_code == 200:
            return
        started = self.call("POST", f"/v2/{self.repo}/blobs/uploads/")
        _expect(started, 202)
        location = started.headers["Location"]
        location += ("&" if "?" in location else "?") + urlencode({"digest": digest})
        _expect(self.call("PUT", location, data=blob, headers={"Content-Type": "application/octet-stream"}), 201)


@cache
def _layer() -> tuple[bytes, str]:
    """A gzipped tar holding one file, built byte-for-byte the same on every call."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        data = b"hello from the gitops tests\n"
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0), _digest(raw.getvalue())


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _expect(response: requests.Response, status: int) -> None:
    if response.status_code != status:
        raise AssertionError(f"{response.request.method} {response.url}: HTTP {response.status_code}, "
                             f"expected {status}: {response.text[:300]}")


# ------------------------------------------------------------ servers


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 in a daemon thread."""

    def __init__(self) -> None:
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0  # the kernel picks one on the first start; restarts reuse it

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self):
        handler = self._handler()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread, self._httpd, self._thread = self._httpd, self._thread, None, None
        if httpd:
            httpd.shutdown()
            httpd.server_close()
        if thread:
            thread.join(5)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class TokenServer(_Server):
    """A token service after the Docker token auth spec, for a registry with `auth.token`.

    The one user (`username`, `password`) gets every action it asks for; anonymous clients get
    a token granting nothing; wrong credentials get 401. Tokens are RS256 JWTs whose signing
    certificate sits in the JWT header (`x5c`) and in `cert_path`, the registry's rootcertbundle;
    `key_mode="kid"` names the key by its libtrust ID instead.
    """

    def __init__(self, directory: Path, username: str, password: str, *, service: str = "gitops-test-registry",
                 issuer: str = "gitops-test-token-issuer", expires_in: int = 300, key_mode: str = "x5c",
                 token_field: str = "token"):
        super().__init__()
        self.username, self.password = username, password
        self.service, self.issuer, self.expires_in = service, issuer, expires_in
        self.key_mode, self.token_field = key_mode, token_field
        self.fail_status: int | None = None  # set to answer every request with this status
        self.token_requests = 0
        self.scopes: list[str] = []
        self._lock = threading.Lock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.cert_path = Path(directory) / "token-signing-cert.pem"
        self._cert = _self_signed(self._key, issuer)
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def auth(self) -> TokenAuth:
        """The registry's `auth.token` settings for this server (start it first: the realm has the port)."""
        return TokenAuth(realm=self.realm, service=self.service, issuer=self.issuer, rootcertbundle=self.cert_path)

    def issue(self, subject: str, scopes: list[str]) -> str:
        now = int(time.time())
        access = []
        for scope in scopes if subject else []:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "iat": now, "nbf": now - 5,
                  "exp": now + self.expires_in, "jti": secrets.token_hex(8), "access": access}
        if self.key_mode == "x5c":
            header = {"x5c": [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()]}
        else:
            header = {"kid": libtrust_key_id(self._key.public_key())}
        return jwt.encode(claims, self._key, algorithm="RS256", headers=header)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.token_requests += 1
                query = parse_qs(urlsplit(self.path).query)
                server.scopes.extend(query.get("scope", []))
                if server.fail_status:
                    self.reply(server.fail_status, b'{"details": "injected failure"}')
                    return
                subject = ""
                given = self.headers.get("Authorization", "")
                if given:
                    expected = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
                    if given != f"Basic {expected}":
                        self.reply(401, b'{"details": "invalid credentials"}',
                                   {"WWW-Authenticate": 'Basic realm="gitops-test-token"'})
                        return
                    subject = server.username
                token = server.issue(subject, query.get("scope", []))
                body = {server.token_field: token, "expires_in": server.expires_in,
                        "issued_at": dt.datetime.now(dt.UTC).isoformat()}
                self.reply(200, json.dumps(body).encode())

        return Handler


def _self_signed(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    """docker/libtrust's key ID: SHA-256 of the DER public key, 240 bits, base32 in 12 groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i:i + 4] for i in range(0, 48, 4))


_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "content-length"}


class FaultProxy(_Server):
    """Forwards to `upstream` (a registry's base URL) unless `mode` says to fail.

    Modes: "ok"; "down" (the listening socket is closed: connection refused); "500"; "401"
    (a Basic challenge); "429" (with `Retry-After: retry_after`). With `failures_left` set, only
    that many requests fail, then the proxy forwards again. `requests` counts paths seen.

    distribution 2.8 ignores `n` and `last` on tag lists (it paginates only the catalog;
    tag pagination came in 3.0) and lists tags unsorted. With `paginate_tags`, the proxy
    pages tag lists as the API spec describes: lexical order, `n` per page, and
    `Link: </v2/<name>/tags/list?last=<tag>&n=<n>>; rel="next"` while more remain.
    """

    MODES = ("ok", "down", "500", "401", "429")

    def __init__(self, upstream: str, retry_after: str = "2"):
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.retry_after = retry_after
        self.failures_left: int | None = None
        self.paginate_tags = False
        self.requests: Counter[str] = Counter()
        self._mode = "ok"
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.trust_env = False

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, not {mode!r}")
        self._mode = mode
        if mode == "down" and self._httpd:
            super().stop()
        elif mode != "down" and not self._httpd and self.port:
            self.start()  # the same port again: clients keep their URL

    def tag_list_requests(self, repo: str) -> int:
        return self.requests[f"/v2/{repo}/tags/list"]

    def stop(self) -> None:
        super().stop()
        self._session.close()

    def _fault(self) -> str:
        with self._lock:
            if self._mode == "ok" or self.failures_left == 0:
                return "ok"
            if self.failures_left is not None:
                self.failures_left -= 1
            return self._mode

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(_QuietHandler):
            def _handle(self) -> None:
                with proxy._lock:
                    proxy.requests[urlsplit(self.path).path] += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy._fault()
                if fault == "500":
                    self.reply(500, b'{"errors": [{"code": "UNKNOWN", "message": "injected"}]}')
                elif fault == "401":
                    self.reply(401, b'{"errors": [{"code": "UNAUTHORIZED", "message": "injected"}]}',
                               {"WWW-Authenticate": 'Basic realm="fault-proxy"'})
                elif fault == "429":
                    self.reply(429, b'{"errors": [{"code": "TOOMANYREQUESTS", "message": "injected"}]}',
                               {"Retry-After": proxy.retry_after})
                elif proxy.paginate_tags and self.command == "GET" and urlsplit(self.path).path.endswith("/tags/list"):
                    self._tag_page()
                else:
                    self._forward(body)

            def _tag_page(self) -> None:
                path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
                upstream = proxy._session.get(proxy.upstream + path, headers=dict(self.headers.items()), timeout=30)
                if upstream.status_code != 200 or "n" not in query:
                    self.reply(upstream.status_code, upstream.content)
                    return
                size, last = int(query["n"][0]), query.get("last", [""])[0]
                remaining = [t for t in sorted(upstream.json()["tags"] or []) if t > last]
                page, more = remaining[:size], len(remaining) > size
                links = {"Link": f'<{path}?{urlencode({"last": page[-1], "n": size})}>; rel="next"'} if more else {}
                self.reply(200, json.dumps({"name": upstream.json()["name"], "tags": page}).encode(), links)

            def _forward(self, body: bytes | None) -> None:
                # Host stays the proxy's, so the registry's absolute URLs (upload locations) point here.
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Accept-Encoding"] = "identity"
                upstream = proxy._session.request(self.command, proxy.upstream + self.path, headers=headers,
                                                  data=body, allow_redirects=False, timeout=30)
                self.send_response(upstream.status_code)
                for name, value in upstream.raw.headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                # HEAD answers carry the blob's length but no body.
                length = (upstream.headers.get("Content-Length", "0") if self.command == "HEAD"
                          else len(upstream.content))
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(upstream.content)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        return Handler

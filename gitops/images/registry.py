"""Tag lists from container registries (Docker Registry HTTP API v2), for image automation.

One `RegistryClient` serves a watcher. It caches bearer tokens per (host, scope), so a
steady scan costs one tag-list request per repository; it caps the requests a host may
receive per scan, so a misconfiguration can never hammer a registry; and it turns every
failure into a `RegistryError` naming host and repository, with `retry_after` when the
registry asked to back off.

Credentials come from `GITOPS_REGISTRY_CREDENTIALS` and Docker's config.json. Docker's
`credsStore`/`credHelpers` (external helper programs) and `identitytoken` (OAuth2
refresh tokens) are not supported: such hosts are contacted anonymously. Credentials
never appear in logs, reprs or error messages.

Not thread-safe: one client per thread.
"""
from __future__ import annotations

import base64
import binascii
import email.utils
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urljoin, urlsplit

import requests

from ..errors import RegistryError, SettingsError
from ..http import request_failure
from .reference import DOCKER_HUB, HUB_ALIASES, parse_image

CREDENTIALS_ENV = "GITOPS_REGISTRY_CREDENTIALS"
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]"})
_USER_AGENT = "gitops-image-automation"
# A token is dropped this long before the registry would refuse it (at most a quarter of
# its lifetime), so a scan never starts with a token that expires mid-way.
_TOKEN_MARGIN = 10.0
_DEFAULT_TOKEN_LIFETIME = 60.0  # what the token spec says to assume without expires_in


# ------------------------------------------------------------ pure parsing


def canonical_host(name: str) -> str:
    """A registry key as users write it (`https://index.docker.io/v1/`, `Docker.io`) -> `docker.io`."""
    host = name.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    return DOCKER_HUB if host in HUB_ALIASES else host


def _split_image(image: str) -> tuple[str, str]:
    """`host[:port]/repo`, or a Docker Hub short name -> (API host, repository). A tag or
    digest is ignored: tags are listed per repository."""
    try:
        ref = parse_image(image.strip().split("@", 1)[0])
    except SettingsError:
        raise RegistryError(f"{image!r} is not an image name", host=canonical_host(image.split("/", 1)[0])) from None
    return ref.api_host.lower(), ref.repository


def uses_http(host: str, insecure_hosts: Iterable[str] = ()) -> bool:
    """Loopback registries and those the user listed as insecure are spoken to without TLS."""
    hostname = host[: host.index("]") + 1] if host.startswith("[") else host.rsplit(":", 1)[0]
    insecure = {canonical_host(h) for h in insecure_hosts}
    return hostname in _LOOPBACK or host in insecure or hostname in insecure


@dataclass(frozen=True)
class Challenge:
    """One `WWW-Authenticate` challenge: scheme in lower case, parameters as given."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)


_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*,?')
_CHALLENGE_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|\s*,\s*|\s*$)")


def parse_challenge(header: str | None) -> Challenge | None:
    """The challenge to answer: Bearer if offered, else Basic, else None.

    requests joins repeated headers with ", ", so one string may hold several challenges.
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    pos, text = 0, header or ""
    while pos < len(text):
        param = _CHALLENGE_PARAM.match(text, pos)
        if param and challenges:
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            challenges[-1][1][param.group(1).lower()] = value
            pos = param.end()
            continue
        scheme = _CHALLENGE_SCHEME.match(text, pos)
        if not scheme:
            break  # the rest is not a challenge we can read
        challenges.append((scheme.group(1).lower(), {}))
        pos = scheme.end()
    for wanted in ("bearer", "basic"):
        for scheme_name, params in challenges:
            if scheme_name == wanted:
                return Challenge(scheme_name, MappingProxyType(params))
    return None


def next_link(header: str | None, base_url: str) -> str | None:
    """The absolute URL of `Link: <...>; rel="next"`, resolved against the page's URL."""
    for match in re.finditer(r"<([^>]*)>([^<]*)", header or ""):
        rel = re.search(r'rel\s*=\s*"?([^";,]*)', match.group(2))
        if rel and "next" in rel.group(1).split():
            return urljoin(base_url, str(match.group(1)))
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from `now` (epoch): either delay-seconds or an HTTP date."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# ------------------------------------------------------------- credentials


@dataclass(frozen=True, repr=False)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"

    __str__ = __repr__


class CredentialStore:
    """Credentials per registry host (`docker.io` for Docker Hub under any of its names)."""

    def __init__(self, entries: Mapping[str, Credentials] | None = None):
        self._by_host = {canonical_host(h): c for h, c in (entries or {}).items()}

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> CredentialStore:
        """`$GITOPS_REGISTRY_CREDENTIALS` first, then `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`."""
        env = os.environ if env is None else env
        folder = env.get("DOCKER_CONFIG") or str(Path(env.get("HOME") or Path.home()) / ".docker")
        entries = _docker_config(Path(folder) / "config.json")
        entries.update(_env_credentials(env.get(CREDENTIALS_ENV)))
        return cls(entries)

    def lookup(self, host: str) -> Credentials | None:
        return self._by_host.get(canonical_host(host))

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_host))

    def __repr__(self) -> str:
        return f"CredentialStore(hosts={list(self.hosts)})"


def _env_credentials(text: str | None) -> dict[str, Credentials]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        # The position only: the text itself holds passwords.
        raise SettingsError(f"{CREDENTIALS_ENV} is not valid JSON (line {getattr(e, 'lineno', '?')}, "
                            f"column {getattr(e, 'colno', '?')})") from None
    if not isinstance(data, dict):
        raise SettingsError(f'{CREDENTIALS_ENV} must be a JSON object {{"host": {{"username": ..., "password": ...}}}}')
    entries = {}
    for host, value in data.items():
        if isinstance(value, str) and ":" in value:
            user, password = value.split(":", 1)
        elif (isinstance(value, dict) and isinstance(value.get("username"), str)
              and isinstance(value.get("password"), str)):
            user, password = value["username"], value["password"]
        else:
            raise SettingsError(f'{CREDENTIALS_ENV}: the entry for {host} must be "user:password" '
                                'or {"username": ..., "password": ...}')
        entries[canonical_host(host)] = Credentials(user, password)
    return entries


def _docker_config(path: Path) -> dict[str, Credentials]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise SettingsError(f"{path}: cannot read Docker's registry credentials ({type(e).__name__})") from None
    auths = data.get("auths") if isinstance(data, dict) else None
    entries = {}
    for host, entry in (auths if isinstance(auths, dict) else {}).items():
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, sep, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, TypeError):
                sep = ""
            if not sep:
                raise SettingsError(f"{path}: auths.{host}.auth is not base64 of user:password")
        elif entry.get("username") and entry.get("password"):
            user, password = str(entry["username"]), str(entry["password"])
        else:
            continue  # stored by a credential helper, or an identity token: not supported
        entries[canonical_host(host)] = Credentials(user, password)
    return entries


# ------------------------------------------------------------------ client


@dataclass(frozen=True, repr=False)
class _Token:
    value: str
    good_until: float  # on the client's clock


class RegistryClient:
    """Lists tags over the Registry HTTP API v2, within a request budget per host and scan."""

    def __init__(self, credentials: CredentialStore | None = None, *, budget_per_scan: int = 100,
                 page_size: int = 1000, insecure_hosts: Iterable[str] = (),
                 session: requests.Session | None = None, timeout: float = 10.0,
                 max_retry_wait: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        """`budget_per_scan`: requests (token requests included) one host may get between two
        `begin_scan()` calls. `max_retry_wait`: a 429 asking for at most this many seconds is
        retried once inside the call; a longer one is left to the caller's back-off."""
        self.credentials = credentials or CredentialStore()
        self.budget_per_scan, self.page_size, self.timeout = budget_per_scan, page_size, timeout
        self.max_retry_wait = max_retry_wait
        self.insecure_hosts = tuple(insecure_hosts)
        self._own_session = session is None
        self._session = session or requests.Session()
        self._clock, self._sleep = clock, sleep
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._challenges: dict[str, Challenge] = {}  # the last one each host sent, to answer up front
        self._used: dict[str, int] = {}
        self._made: dict[str, int] = {}

    @property
    def requests_made(self) -> Mapping[str, int]:
        """Requests per registry host since the client was made (token requests included)."""
        return MappingProxyType(self._made)

    def begin_scan(self) -> None:
        """Start a new scan: every host gets its full request budget again."""
        self._used.clear()

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list_tags(self, image: str) -> list[str]:
        """Every tag of `image`, in the registry's order, following pagination."""
        host, repo = _split_image(image)
        base = f"{'http' if uses_http(host, self.insecure_hosts) else 'https'}://{host}"
        url: str | None = f"{base}/v2/{repo}/tags/list?n={self.page_size}"
        tags: dict[str, None] = {}
        while url:
            response = self._get(host, repo, url)
            try:
                page = response.json().get("tags") or []
                if not all(isinstance(t, str) for t in page):
                    raise ValueError
            except (ValueError, AttributeError):
                raise RegistryError("the tag list is not the JSON the API defines", host=host,
                                    repository=repo) from None
            tags.update(dict.fromkeys(page))
            url = next_link(response.headers.get("Link"), response.url)
            # Never carry credentials elsewhere because a page said so.
            if url and urlsplit(url).netloc.lower() != host:
                raise RegistryError("the next-page link points to another host", host=host, repository=repo)
        return list(tags)

    # ------------------------------------------------------------ internals

    def _get(self, host: str, repo: str, url: str) -> requests.Response:
        scope = f"repository:{repo}:pull"
        cached = self._tokens.get((host, scope))
        if cached and cached.good_until > self._clock():
            headers, fresh = {"Authorization": f"Bearer {cached.value}"}, False
        elif host in self._challenges:
            headers, fresh = self._answer(host, repo, scope, self._challenges[host]), True
        else:
            headers, fresh = None, False
        response = self._send(host, repo, url, headers)
        if response.status_code == 401 and not fresh:
            # Anonymous so far, or a cached token the registry no longer takes: answer once.
            self._tokens.pop((host, scope), None)
            challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
            if challenge is None:
                raise RegistryError("unauthorized, and the registry sent no challenge to answer",
                                    host=host, repository=repo)
            headers = self._answer(host, repo, scope, challenge)
            self._challenges[host] = challenge  # answerable: next time, answer before being asked
            response = self._send(host, repo, url, headers)
        if response.status_code == 401:
            self._tokens.pop((host, scope), None)
            self._challenges.pop(host, None)  # the registry may have changed its auth: relearn it
            who = "the configured credentials" if self.credentials.lookup(host) else "anonymous access"
            raise RegistryError(f"unauthorized: the registry refused {who}", host=host, repository=repo)
        return self._check(host, repo, response)

    def _answer(self, host: str, repo: str, scope: str, challenge: Challenge) -> dict[str, str]:
        creds = self.credentials.lookup(host)
        if challenge.scheme == "basic":
            if creds is None:
                raise RegistryError("unauthorized: the registry wants a password and none is configured "
                                    f"for this host (see {CREDENTIALS_ENV})", host=host, repository=repo)
            raw = f"{creds.username}:{creds.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {"Authorization": f"Bearer {self._fetch_token(host, repo, scope, challenge, creds)}"}

    def _fetch_token(self, host: str, repo: str, scope: str, challenge: Challenge,
                     creds: Credentials | None) -> str:
        realm = challenge.params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError("the registry's bearer challenge names no token service URL",
                                host=host, repository=repo)
        params = {"scope": scope, **({"service": challenge.params["service"]} if "service" in challenge.params else {})}
        response = self._request(host, repo, realm, params=params,
                                 auth=(creds.username, creds.password) if creds else None)
        where = f"the token service {urlsplit(realm).netloc}"
        if response.status_code in (401, 403):
            who = "the configured credentials" if creds else "anonymous access"
            raise RegistryError(f"unauthorized: {where} refused {who}", host=host, repository=repo)
        self._check(host, repo, response, where)
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            if not isinstance(token, str) or not token:
                raise ValueError
        except (ValueError, AttributeError):
            raise RegistryError(f"{where} answered without a token", host=host, repository=repo) from None
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = _DEFAULT_TOKEN_LIFETIME
        good_until = self._clock() + lifetime - min(_TOKEN_MARGIN, lifetime / 4)
        self._tokens[(host, scope)] = _Token(token, good_until)
        return token

    def _send(self, host: str, repo: str, url: str, headers: Mapping[str, str] | None) -> requests.Response:
        response = self._request(host, repo, url, headers=headers)
        if response.status_code == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait is not None and wait <= self.max_retry_wait:
                self._sleep(wait)
                response = self._request(host, repo, url, headers=headers)
        return response

    def _request(self, host: str, repo: str, url: str, *, headers: Mapping[str, str] | None = None,
                 params: Mapping[str, str] | None = None,
                 auth: tuple[str, str] | None = None) -> requests.Response:
        used = self._used.get(host, 0)
        if used >= self.budget_per_scan:
            raise RegistryError(f"request budget of {self.budget_per_scan} for host {host} used up in this scan",
                                host=host, repository=repo)
        self._used[host] = used + 1
        self._made[host] = self._made.get(host, 0) + 1
        try:
            return self._session.get(url, params=params, auth=auth or _as_is, timeout=self.timeout,
                                     headers={"User-Agent": _USER_AGENT, "Accept": "application/json",
                                              **(headers or {})})
        except requests.Timeout:
            raise RegistryError(f"no answer from {urlsplit(url).netloc} within {self.timeout:g} s",
                                host=host, repository=repo) from None
        except requests.RequestException as e:
            raise RegistryError(f"cannot reach {urlsplit(url).netloc}: {request_failure(e)}",
                                host=host, repository=repo) from None

    def _check(self, host: str, repo: str, response: requests.Response,
               where: str = "the registry") -> requests.Response:
        code = response.status_code
        if code == 200:
            return response
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if code == 404:
            message = "repository not found" if where == "the registry" else f"{where} answered HTTP 404"
        elif code == 403:
            message = f"access denied by {where}"
        elif code == 429:
            message = f"rate limited by {where} (HTTP 429)"
        elif code >= 500:
            message = f"{where} failed (HTTP {code})"
        else:
            message = f"unexpected HTTP {code} from {where}"
        if retry_after is not None:
            message += f"; retry after {retry_after:g} s"
        raise RegistryError(message, host=host, repository=repo, retry_after=retry_after)


def _as_is(request: requests.PreparedRequest) -> requests.PreparedRequest:
    # Passed as `auth` so requests never swaps our Authorization header for a ~/.netrc entry.
    return request

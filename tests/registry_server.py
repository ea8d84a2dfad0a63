"""A real container registry on loopback, for tests and benchmarks of image automation.

The binary is Debian's build of distribution v2.8.2 (`docker-registry`): one static Go
program in a .deb, so it is fetched over plain HTTP from the Debian pool, checked
against a pinned sha256 (the pin, not the transport, is what makes this safe) and
unpacked with `dpkg-deb -x`: no root, no apt lists. It lands in a per-version cache
folder and is reused from there.

`RegistryServer` runs one registry per folder: its config, storage and log live there,
and it is stopped by the PID it was started with, never by name.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from gitops import paths
from gitops.errors import ToolError
from gitops.local.ports import free_ports
from gitops.text import log_tail

REGISTRY_VERSION = "2.8.2"
DEB_URL = ("http://deb.debian.org/debian/pool/main/d/docker-registry/"
           "docker-registry_2.8.2+ds1-1_amd64.deb")
# Measured from two downloads of DEB_URL that agreed byte for byte.
DEB_SHA256 = "a9bd06c0e006854608f8469b4371743f40604ad90975532bb3b7ceeb72fe2913"
_DEB_MEMBER = "usr/bin/docker-registry"

_DOWNLOAD_TIMEOUT = 60.0
_START_TIMEOUT = 30.0
_STOP_GRACE = 10.0
_POLL = 0.1
# A chosen port can be taken between the probe and the registry's bind; try again then.
_BIND_ATTEMPTS = 3


def registry_binary_path() -> Path:
    """Where the fetched binary lives: the version in the folder name keeps releases apart."""
    return paths.cache_root() / "tools" / f"docker-registry-{REGISTRY_VERSION}" / "bin" / "docker-registry"


def ensure_registry(progress: Callable[[str], None] = print,
                    session: requests.Session | None = None) -> Path:
    """The docker-registry binary: from the cache, else downloaded, verified and unpacked there."""
    target = registry_binary_path()
    # Renamed into place last, so its presence means a complete, verified binary.
    if target.is_file() and os.access(target, os.X_OK):
        return target
    dpkg_deb = shutil.which("dpkg-deb")
    if not dpkg_deb:
        raise ToolError("fetching docker-registry needs `dpkg-deb` (package dpkg), which is not on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target so the final rename is atomic.
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target.parent) as tmp_name:
        tmp = Path(tmp_name)
        deb = tmp / "docker-registry.deb"
        _download(DEB_URL, deb, DEB_SHA256, progress, session)
        unpacked = tmp / "root"
        done = subprocess.run([dpkg_deb, "-x", str(deb), str(unpacked)], capture_output=True, text=True)
        member = unpacked / _DEB_MEMBER
        if done.returncode != 0 or not member.is_file():
            raise ToolError(f"dpkg-deb could not unpack {_DEB_MEMBER} from {DEB_URL}: "
                            f"{(done.stderr or done.stdout).strip()[-500:] or 'member missing'}")
        member.chmod(0o755)
        os.replace(member, target)
    progress(f"docker-registry {REGISTRY_VERSION} ready at {target}")
    return target


def _download(url: str, dest: Path, sha256: str, progress: Callable[[str], None],
              session: requests.Session | None) -> None:
    http = session or requests.Session()
    digest = hashlib.sha256()
    progress(f"downloading docker-registry {REGISTRY_VERSION} from {url} ...")
    started = time.monotonic()
    try:
        with http.get(url, stream=True, timeout=_DOWNLOAD_TIMEOUT) as response:
            if response.status_code != 200:
                raise ToolError(f"downloading {url}: HTTP {response.status_code}")
            with open(dest, "wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    digest.update(chunk)
                    out.write(chunk)
    except requests.RequestException as e:
        raise ToolError(f"downloading {url}: {e}") from e
    finally:
        if session is None:
            http.close()
    if digest.hexdigest() != sha256:
        raise ToolError(f"{url} has sha256 {digest.hexdigest()}, expected the pinned {sha256}; "
                        "refusing to use it")
    progress(f"downloaded {dest.stat().st_size / 1e6:.1f} MB in {time.monotonic() - started:.1f} s; "
             "sha256 matches the pin")


# -------------------------------------------------------------------- server


@dataclass(frozen=True)
class TokenAuth:
    """`auth.token`: the registry trusts JWTs signed by a key certified in `rootcertbundle`."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


@dataclass(frozen=True)
class HtpasswdAuth:
    """`auth.htpasswd`: HTTP basic auth against a bcrypt htpasswd file."""

    realm: str
    path: Path


class RegistryServer:
    """One registry process serving `root`; `start()` returns once `GET /v2/` answers."""

    def __init__(self, binary: Path, root: Path, *, token: TokenAuth | None = None,
                 htpasswd: HtpasswdAuth | None = None):
        if token and htpasswd:
            raise ToolError("a registry takes one auth method: token or htpasswd, not both")
        self.binary = Path(binary).absolute()
        self.root = Path(root).absolute()
        self.token, self.htpasswd = token, htpasswd
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def config_path(self) -> Path:
        return self.root / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, as it appears in image references."""
        if self.port is None:
            raise ToolError(f"the registry in {self.root} is not started")
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = _START_TIMEOUT) -> RegistryServer:
        if self._proc is not None and self._proc.poll() is None:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(_BIND_ATTEMPTS):
            ports = free_ports(1)
            if not ports:
                raise ToolError("no free port on 127.0.0.1 for the registry")
            self.port = ports[0]
            self._write_config()
            if self._spawn_and_wait(timeout):
                return self
        raise ToolError(f"docker-registry in {self.root} found no free port in {_BIND_ATTEMPTS} attempts\n"
                        f"{log_tail(self.log_path)}")

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL after a grace period; always waits so no zombie is left."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(_STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_config(self) -> None:
        config: dict = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "data")},
                        "delete": {"enabled": True}},
            # An explicit secret silences the "generated random secret" warning on every start.
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
        }
        if self.token:
            config["auth"] = {"token": {"realm": self.token.realm, "service": self.token.service,
                                        "issuer": self.token.issuer,
                                        "rootcertbundle": str(Path(self.token.rootcertbundle).absolute())}}
        elif self.htpasswd:
            config["auth"] = {"htpasswd": {"realm": self.htpasswd.realm,
                                           "path": str(Path(self.htpasswd.path).absolute())}}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _spawn_and_wait(self, timeout: float) -> bool:
        """True once the registry answers; False if its port was taken meanwhile."""
        if not os.access(self.binary, os.X_OK):
            raise ToolError(f"docker-registry binary {self.binary} is missing or not executable")
        with open(self.log_path, "ab") as log:
            log_start = log.tell()  # the log is kept across restarts; judge only this run's lines
            self._proc = subprocess.Popen(
                [str(self.binary), "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                # Own session: a Ctrl-C meant for the test runner reaches us, not the registry.
                start_new_session=True)
        deadline = time.monotonic() + timeout
        with requests.Session() as http:
            http.trust_env = False  # a proxy from the environment must not see loopback calls
            while True:
                code = self._proc.poll()
                if code is not None:
                    self._proc = None
                    if b"address already in use" in _read_from(self.log_path, log_start):
                        return False
                    raise ToolError(f"docker-registry exited with code {code} while starting "
                                    f"in {self.root}\n{log_tail(self.log_path)}")
                # Our process must hold the port: another registry that took it between the
                # probe and our bind would answer /v2/ just the same.
                if _listens(self._proc.pid, self.port) and _answers(http, self.url):
                    return True
                if time.monotonic() > deadline:
                    self.stop()
                    raise ToolError(f"docker-registry in {self.root} did not answer on {self.url}/v2/ "
                                    f"within {timeout:.0f} s\n{log_tail(self.log_path)}")
                time.sleep(_POLL)


def _answers(http: requests.Session, url: str) -> bool:
    try:
        return http.get(f"{url}/v2/", timeout=2).status_code in (200, 401)
    except requests.RequestException:
        return False


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds a socket listening on 127.0.0.1:`port` (from /proc)."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    for row in table:
        fields = row.split()
        # local_address is hex ip:port; state 0A is LISTEN; field 9 is the socket's inode.
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A" and f"socket:[{fields[9]}]" in inodes:
            return True
    return False


def _read_from(log: Path, offset: int) -> bytes:
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return b""



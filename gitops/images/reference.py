"""Container image references: parse them as Docker does, format them as the user wrote them.

Pure. `nginx:1.2`, `docker.io/library/nginx:1.2` and `index.docker.io/library/nginx:1.2` are the
same image, so comparisons use the normalised registry and repository; but write-back must not
turn a user's `nginx:1.2` into `docker.io/library/nginx:1.3`, so each reference also keeps the
name exactly as written.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ..errors import SettingsError

DOCKER_HUB = "docker.io"
# Docker Hub's API lives on another host than the name users write.
DOCKER_HUB_API = "registry-1.docker.io"
HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})

# The grammar of github.com/distribution/reference, written out for Python.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST_LABEL = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_REGISTRY = re.compile(rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_MAX_NAME = 255


@dataclass(frozen=True)
class ImageRef:
    """One image reference; equality ignores how the name was spelled."""

    registry: str
    """host[:port] as written (`ghcr.io`, `127.0.0.1:5000`), `docker.io` when none was."""
    repository: str
    """Path within the registry, `library/nginx` for Docker Hub's `nginx`."""
    tag: str | None = None
    digest: str | None = None
    written_name: str = field(default="", compare=False)
    """The name part exactly as written (`nginx`, `docker.io/nginx`), for write-back."""

    @property
    def canonical_name(self) -> str:
        """`registry/repository`, the same for every spelling of one repository."""
        return f"{self.registry}/{self.repository}"

    @property
    def name(self) -> str:
        """The name as the user wrote it (the canonical one when built without a spelling)."""
        return self.written_name or self.canonical_name

    @property
    def api_host(self) -> str:
        """The host that serves the registry API for this image."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def with_tag(self, tag: str) -> ImageRef:
        """The same image spelled the same way at another tag; a digest no longer applies."""
        if not TAG_PATTERN.fullmatch(tag):
            raise SettingsError(f"invalid image tag {tag!r}")
        return replace(self, tag=tag, digest=None)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_image(text: str) -> ImageRef:
    """`[registry/]repository[:tag][@digest]` -> ImageRef; SettingsError names the text."""
    def bad(why: str) -> SettingsError:
        return SettingsError(f"invalid image reference {text!r}: {why}")

    if not isinstance(text, str) or not text or text != text.strip():
        raise bad("empty or surrounded by whitespace")
    rest, digest = text, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not _DIGEST.fullmatch(digest):
            raise bad(f"digest {digest!r} is not algorithm:hex")
    name, tag = rest, None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not TAG_PATTERN.fullmatch(tag):
            raise bad(f"tag {tag!r} must be 1-128 of letters, digits, '_', '.', '-', not starting with '.' or '-'")
    if not name:
        raise bad("no repository name")
    if len(name) > _MAX_NAME:
        raise bad(f"the name is longer than {_MAX_NAME} characters")

    first, sep, remainder = name.partition("/")
    # Docker's rule: the first segment is a registry only if it cannot be a Hub user name.
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
        if not _REGISTRY.fullmatch(registry):
            raise bad(f"registry {registry!r} is not host[:port]")
    else:
        registry, path = DOCKER_HUB, name
    if registry in HUB_ALIASES:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    for component in path.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise bad(f"repository path component {component!r} must be lowercase letters and digits "
                      "separated by '.', '_', '__' or '-'")
    return ImageRef(registry=registry, repository=path, tag=tag, digest=digest, written_name=name)


def is_tag(text: str) -> bool:
    """Whether `text` is a valid tag on its own (no name, no digest)."""
    return bool(TAG_PATTERN.fullmatch(text))

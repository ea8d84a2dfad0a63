"""One error hierarchy for the whole project.

Every message names what the user must look at: the file and line, the object
(`kind/namespace/name`), or the repo/ref/path, so no traceback is needed to act on it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .text import escape

# A commit can have thousands of problems (one bad line in a generated file); the first hundred
# say what is wrong, and the rest would only bury them.
SHOWN_PROBLEMS = 100


class GitOpsError(Exception):
    """Base of every error this project raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the desired state, located as `path:line`.

    Paths and messages quote the config repo, which is hostile input: control characters are
    escaped as the problem is made, so no file name or value can start a line of its own (or move
    a terminal's cursor) wherever a problem is shown: a terminal, a log, a pull-request comment.
    """

    path: str
    line: int
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", escape(self.path))
        object.__setattr__(self, "message", escape(self.message))

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class ManifestError(GitOpsError):
    """The desired state is invalid; carries every problem found, not just the first, and shows
    the first `shown` of them."""

    def __init__(self, problems: Sequence[Problem], *, shown: int = SHOWN_PROBLEMS):
        self.problems = tuple(sorted(problems, key=lambda p: (p.path, p.line, p.message)))
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in the manifests; nothing was applied:"
        lines = [header, *(f"  {p}" for p in self.problems[:shown])]
        if count > shown:
            lines.append(f"  and {count - shown} more")
        super().__init__("\n".join(lines))


class SourceError(GitOpsError):
    """The config repo, ref or path cannot be read."""

    def __init__(self, message: str, *, repo: str, ref: str | None = None, path: str | None = None):
        self.repo, self.ref, self.path = repo, ref, path
        where = f"repo {repo}" + (f", ref {ref}" if ref else "") + (f", path {path}" if path else "")
        super().__init__(f"{message} ({where})")


class SettingsError(GitOpsError):
    """A stack setting or CLI flag is missing or malformed."""


class ToolError(GitOpsError):
    """A pinned engine or control-plane binary cannot be found or built."""


class ClusterError(GitOpsError):
    """The local control plane failed to start, or is not running."""


class EngineError(GitOpsError):
    """The Pulumi engine failed (preview, up, refresh)."""


class EngineKilledError(EngineError):
    """The engine's process was killed by a signal before it ended, so it saved no state."""


class StateDamagedError(EngineError):
    """The stack's state is damaged in a way no automatic repair can prove safe: a person must act.
    Retrying cannot help until the named file changes, so the watcher stalls instead of retrying."""

    def __init__(self, stack: str, damage: Sequence[object]):
        self.stack, self.damage = stack, tuple(damage)
        lines = "\n".join(f"  {d}" for d in self.damage)
        super().__init__(f"the state of stack {stack} is damaged; nothing was changed:\n{lines}")


class LockError(GitOpsError):
    """Another process holds the stack: a second watcher, or a live `pulumi up`."""


class GuardError(GitOpsError):
    """The watcher refused a commit, e.g. one that deletes most of the stack."""


class RegistryError(GitOpsError):
    """A container registry cannot list an image's tags; `retry_after` (seconds) asks the caller to back off."""

    def __init__(self, message: str, *, host: str, repository: str | None = None,
                 retry_after: float | None = None):
        self.host, self.repository, self.retry_after = host, repository, retry_after
        where = f"registry {host}" + (f", repository {repository}" if repository else "")
        super().__init__(f"{message} ({where})")


class PublishError(GitOpsError):
    """Posting the plan to a pull request failed (comments or commit status)."""


class ToolMissingError(GitOpsError):
    """A pinned binary a command needs is not built yet (`gitops tools` builds it)."""

    def __init__(self, tool: str):
        self.tool = tool
        super().__init__(f"{tool} is not built yet: run `gitops tools`")

"""What the watcher needs from the world, as protocols: the engine, the config repo, the image
registries and the write-back. `Ports.real` wires the real ones; unit tests pass fakes, so the
scheduling is tested in seconds without a single tool."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..engine import Applied, RefreshResult, RunPlan, RunResult
from ..engine.recover import Recovery
from ..images.scan import ImageScanner, ScanResult
from ..images.writeback import Edit, WriteBack, WriteResult, write_back
from ..kube.dryrun import Verdict, require_acceptance
from ..model import DesiredState, Manifest
from ..settings import ClusterSettings, StackSettings
from ..source.git import GitSource, SourceFile


class Engine(Protocol):
    def turn(self, *, deep: bool = False, cancelled: Callable[[], bool] = ...,
             on_wait: Callable[[dict[str, Any]], None] | None = None) -> AbstractContextManager[Recovery]: ...

    def deep_recover(self) -> Recovery: ...

    def applied(self) -> Applied: ...

    def plan(self, desired: DesiredState, settings: StackSettings) -> RunPlan: ...

    def up(self, commit: str, *, program_env: Mapping[str, str] | None = None,
           on_event: Callable[[Any], None] | None = None, plan: RunPlan | None = None) -> RunResult: ...

    def refresh(self, *, preview_only: bool, on_event: Callable[[Any], None] | None = None) -> RefreshResult: ...


class Source(Protocol):
    label: str

    def resolve(self, ref: str) -> str: ...

    def read(self, commit: str, path: str = ".") -> list[SourceFile]: ...

    def tree(self, commit: str) -> AbstractContextManager[Path]: ...


class Scanner(Protocol):
    def scan(self, files: Sequence[SourceFile], commit: str, settings: StackSettings,
             settings_where: str, source: Source | None = None) -> ScanResult: ...

    @property
    def requests_made(self) -> Mapping[str, int]: ...


WriteBackFn = Callable[[WriteBack, Sequence[str], Edit, str], WriteResult]
VerdictFn = Callable[[ClusterSettings, Sequence[Manifest], str], Verdict]


@dataclass
class Ports:
    engine: Engine
    source: Callable[[str], Source]
    """A source for a repo (path or URL)."""
    scanner: Callable[[StackSettings], Scanner]
    write_back: WriteBackFn
    verdict: VerdictFn = require_acceptance
    """The API server's dry run of a commit's objects (RejectedError when it refuses some)."""
    clock: Callable[[], float] = time.monotonic
    _sources: dict[str, Source] = field(default_factory=dict, repr=False)
    _scanner: Scanner | None = field(default=None, repr=False)

    def source_for(self, repo: str) -> Source:
        """One source per repo for the watcher's life: its cache clone and refs are reused."""
        if repo not in self._sources:
            self._sources.clear()
            self._sources[repo] = self.source(repo)
        return self._sources[repo]

    def scanner_for(self, settings: StackSettings) -> Scanner:
        """One scanner for the watcher's life, so registry tokens and back-offs carry over."""
        if self._scanner is None:
            self._scanner = self.scanner(settings)
        return self._scanner

    @staticmethod
    def real(project_dir: Path, stack: str, env: Mapping[str, str],
             clock: Callable[[], float] = time.monotonic) -> Ports:
        from ..engine import StackEngine

        return Ports(engine=StackEngine(project_dir, stack, env), source=GitSource,
                     scanner=lambda s: ImageScanner(env, s.images.insecure_registries, clock=clock),
                     write_back=write_back, clock=clock)

"""Real git config repos for tests: commit files, move them, branch and tag, with the git CLI."""
from __future__ import annotations

import subprocess
from pathlib import Path


class ConfigRepo:
    def __init__(self, root: Path, bare_remote: Path | None = None):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "test@example.invalid")
        self.git("config", "user.name", "gitops tests")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True, text=True).stdout.strip()

    def write(self, files: dict[str, str | None], message: str = "change") -> str:
        """Write (or delete, with None) files and commit; returns the new commit SHA."""
        for name, text in files.items():
            path = self.root / name
            if text is None:
                self.git("rm", "-q", name)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            self.git("add", name)
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def move(self, old: str, new: str, message: str = "move") -> str:
        (self.root / new).parent.mkdir(parents=True, exist_ok=True)
        self.git("mv", old, new)
        self.git("commit", "-q", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def push_to(self, bare: Path) -> None:
        if not bare.exists():
            subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
            self.git("remote", "add", "origin", str(bare))
        self.git("push", "-q", "--all", "origin")
        self.git("push", "-q", "--tags", "origin")

"""Real parts for integration tests: the pinned engine, one local control plane per run, and a
fresh Pulumi project copy, stack, namespace and config repo per test."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitrepo import ConfigRepo

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tools():
    """The pinned binaries. Missing tools fail the run: integration tests never skip."""
    from gitops.local.tools import ensure_tools

    return ensure_tools(progress=lambda line: print(line, file=sys.stderr))


@pytest.fixture(scope="session")
def cluster(tools, tmp_path_factory):
    from gitops.local.cluster import cluster_down, cluster_up

    root = tmp_path_factory.mktemp("cluster")
    running = cluster_up({name: tool.path for name, tool in tools.items()}, root=root,
                         progress=lambda line: print(line, file=sys.stderr))
    yield running
    cluster_down(root, progress=lambda line: None)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pulumi-state")


@dataclass
class Project:
    """A copy of this project's Pulumi files with one stack, as a user's checkout would have."""

    root: Path
    stack: str
    namespace: str
    repo: ConfigRepo
    kubeconfig: Path
    env: dict[str, str]

    def write_stack(self, **settings: object) -> None:
        config = {"gitops:repo": str(self.repo.root), "gitops:namespace": self.namespace,
                  "gitops:kubeconfig": str(self.kubeconfig), **{f"gitops:{k}": v for k, v in settings.items()}}
        (self.root / "stacks" / f"Pulumi.{self.stack}.yaml").write_text(json.dumps({"config": config}))

    def gitops(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "gitops", "--project-dir", str(self.root), *args],
                                env=self.env, capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"gitops {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["pulumi", *args, "--stack", self.stack, "--non-interactive"], cwd=self.root,
                                env=self.env, capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def kubectl_json(self, *args: str) -> dict:
        out = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args, "-o", "json"],
                             env=self.env, check=True, capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)

    def exists(self, *args: str) -> bool:
        result = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "get", *args, "--ignore-not-found",
                                 "-o", "name"], env=self.env, capture_output=True, text=True, timeout=60)
        return bool(result.stdout.strip())

    def outputs(self) -> dict:
        return json.loads(self.pulumi("stack", "output", "--json").stdout)

    @property
    def files(self):
        """Where the file backend keeps this stack."""
        from gitops.state.backend import Backend

        return Backend(self.env["PULUMI_BACKEND_URL"]).stack_files("gitops", self.stack)

    def preview_on_branch(self, files: dict[str, str | None], message: str = "change") -> list[dict]:
        """Commit `files` on a new branch `feature` and return the changes its JSON preview plans."""
        self.repo.git("checkout", "-q", "-b", "feature")
        self.repo.write(files, message)
        result = self.gitops("preview", "--stack", self.stack, "--ref", "feature", "--format", "json", check=False)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["changes"]

    def watch_status(self) -> dict:
        """The watcher's status file, `{}` until it writes one (or while it is being replaced)."""
        from gitops.engine import stack_dir

        try:
            return json.loads((stack_dir(self.root, self.stack, self.env) / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def state_file(self) -> Path:
        path = self.files.checkpoints[0]
        assert path.is_file(), path
        return path

    def deployment(self) -> dict:
        return json.loads(self.state_file().read_text())["checkpoint"]["latest"]


@pytest.fixture
def project(cluster, state_dir, tmp_path) -> Project:
    from gitops.engine import engine_env

    root = tmp_path / "project"
    (root / "stacks").mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(PROJECT / name, root / name)
    (root / ".venv").symlink_to(Path(sys.prefix))
    suffix = uuid.uuid4().hex[:8]
    env = engine_env({**os.environ, "PULUMI_BACKEND_URL": f"file://{state_dir}"})
    return Project(root=root, stack=f"t-{suffix}", namespace=f"t-{suffix}", repo=ConfigRepo(tmp_path / "config"),
                   kubeconfig=cluster.kubeconfig, env=env)


def example_files(namespace: str) -> dict[str, str]:
    """The bundled example, moved into the test's own namespace and API group (CRDs are cluster-wide)."""
    root = PROJECT / "examples" / "config"
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        text = path.read_text()
        if path.name == "namespace.yaml":
            text = text.replace("name: demo", f"name: {namespace}")
        text = text.replace("demo.gitops.dev", f"{namespace}.gitops.dev")
        files[path.relative_to(root).as_posix()] = text
    return files

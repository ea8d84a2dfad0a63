"""What every benchmark sets up the same way: a copy of this project's Pulumi files, as a user's
checkout would have them, using this checkout's virtualenv."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project_copy(work: Path) -> Path:
    project = work / "project"
    (project / "stacks").mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, project / name)
    (project / ".venv").symlink_to(Path(sys.prefix))
    return project


def configmap_files(namespace: str, count: int) -> dict[str, str]:
    """A namespace and `count` small ConfigMaps in it, a file each."""
    files = {"ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n"}
    files.update({f"c{i:05}.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i:05}}}\ndata: {{k: v{i}}}\n"
                  for i in range(count)})
    return files


def timed_up(project: Path, stack: str, env: dict[str, str]) -> float:
    """Seconds of one `gitops up -q`, from process start."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gitops", "--project-dir", str(project), "up", "--stack", stack, "-q"],
                   env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - started

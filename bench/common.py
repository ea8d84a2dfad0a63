"""What every benchmark sets up the same way: a copy of this project's Pulumi files, as a user's
checkout would have them, using this checkout's virtualenv."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project_copy(work: Path) -> Path:
    project = work / "project"
    (project / "stacks").mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, project / name)
    (project / ".venv").symlink_to(Path(sys.prefix))
    return project

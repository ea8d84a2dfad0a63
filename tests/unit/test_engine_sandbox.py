"""The preview's throw-away backend holds a copy of the stack's checkpoint, whatever form the
file backend URL takes, and never touches the real one."""
import json

import pytest

from gitops.engine.run import _sandbox
from gitops.state.backend import Backend


@pytest.mark.parametrize("query", ["", "?no_tmp_dir=true", "?metadata=skip&no_tmp_dir=true"])
def test_the_checkpoint_is_copied_for_any_file_backend_url(tmp_path, query):
    # Issue 10, bug 3: with `?no_tmp_dir=true` the preview copied no checkpoint and planned against nothing.
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: gitops\n")
    state = tmp_path / "state"
    checkpoint = Backend(f"file://{state}").stack_files("gitops", "dev").checkpoints[0]
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text(json.dumps({"checkpoint": {"latest": {"resources": [{"urn": "u"}]}}}))
    before = checkpoint.read_bytes()
    with _sandbox(project, "dev", {"PULUMI_BACKEND_URL": f"file://{state}{query}"}) as env:
        copy = Backend(env["PULUMI_BACKEND_URL"]).stack_files("gitops", "dev").checkpoint()
        assert copy is not None and copy.read_bytes() == before and copy != checkpoint
        copy.write_text("{}")  # whatever the preview does to its copy
    assert checkpoint.read_bytes() == before
    assert not copy.exists()  # the sandbox is gone

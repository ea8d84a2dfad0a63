"""What a stack applied, read from a file backend's checkpoint without starting the Pulumi CLI."""
import json

from gitops.engine import StackEngine
from gitops.state.backend import Backend


def engine_with(tmp_path, checkpoint: dict | None) -> StackEngine:
    project = tmp_path / "project"
    project.mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: gitops\n")
    url = f"file://{tmp_path / 'state'}?metadata=skip"
    if checkpoint is not None:
        path = Backend(url).stack_files("gitops", "dev").checkpoints[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(checkpoint))
    return StackEngine(project, "dev", {"PULUMI_BACKEND_URL": url})


def test_the_stack_outputs_come_from_the_checkpoint(tmp_path):
    stack = {"type": "pulumi:pulumi:Stack", "urn": "u",
             "outputs": {"commit": "abc", "subjects": ["ConfigMap/ns/a"], "secret": {"ciphertext": "x"}}}
    other = {"type": "kubernetes:core/v1:ConfigMap", "urn": "c", "outputs": {"commit": "no"}}
    applied = engine_with(tmp_path, {"checkpoint": {"latest": {"resources": [other, stack]}}}).applied()
    assert (applied.commit, applied.subjects) == ("abc", ("ConfigMap/ns/a",))


def test_a_stack_never_applied_has_applied_nothing(tmp_path):
    assert engine_with(tmp_path, None).applied().commit is None
    assert engine_with(tmp_path / "b", {"checkpoint": {"latest": None}}).applied().subjects == ()


def test_the_workspace_gives_the_checkpoint_outputs_with_secrets_masked(tmp_path):
    from gitops.engine.workspace import _Workspace

    stack = {"type": "pulumi:pulumi:Stack", "urn": "u",
             "outputs": {"commit": "abc", "token": {"4dabf18193072939515e22adb298388d": "1b47", "ciphertext": "x"}}}
    engine = engine_with(tmp_path, {"checkpoint": {"latest": {"resources": [stack]}}})
    workspace = _Workspace.__new__(_Workspace)  # no CLI: only what stack_outputs reads
    workspace.env_vars, workspace.work_dir = engine.env, str(engine.project_dir)
    values = workspace.stack_outputs("dev")
    assert {k: (v.value, v.secret) for k, v in values.items()} == {"commit": ("abc", False),
                                                                    "token": ("[secret]", True)}

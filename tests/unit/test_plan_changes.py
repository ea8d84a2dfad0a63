"""Engine preview events -> plan changes, on events recorded from the real engine
(tests/unit/data/preview-events-*.jsonl: the bundled example, then a branch that edits, adds,
deletes and, in the second file, also changes an immutable Deployment selector)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.plan.changes import changes_from_events, subject_from_urn
from gitops.plan.model import Op

DATA = Path(__file__).parent / "data"


def recorded(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / f"preview-events-{name}.jsonl").read_text().splitlines()]


def by_subject(name: str):
    changes, unchanged = changes_from_events(recorded(name))
    return {c.subject: c for c in changes}, unchanged


@pytest.mark.parametrize("urn, subject", [
    ("urn:pulumi:dev::gitops::kubernetes:apps/v1:Deployment::apps/Deployment:demo/web", "Deployment/demo/web"),
    ("urn:pulumi:dev::gitops::kubernetes:core/v1:Namespace::core/Namespace:demo", "Namespace/demo"),
    ("urn:pulumi:dev::gitops::kubernetes:rbac.authorization.k8s.io/v1:ClusterRole::"
     "rbac.authorization.k8s.io/ClusterRole:system:aggregate-to-view", "ClusterRole/system:aggregate-to-view"),
])
def test_subject_from_urn(urn, subject):
    assert subject_from_urn(urn) == subject


def test_ops_and_counts_of_an_update_branch():
    changes, unchanged = by_subject("update")
    assert {s: c.op for s, c in changes.items()} == {
        "Job/demo/once": Op.CREATE, "ConfigMap/demo/extra": Op.CREATE,
        "ConfigMap/demo/web-settings": Op.UPDATE, "Secret/demo/web-credentials": Op.UPDATE,
        "Deployment/demo/web": Op.UPDATE, "Service/demo/web": Op.DELETE}
    assert unchanged == 3  # Namespace, CRD, Backup; the stack and provider are not objects


def test_field_level_diff_has_old_and_new_values():
    changes, _ = by_subject("update")
    fields = {f.path: f for f in changes["Deployment/demo/web"].fields}
    assert (fields["spec.replicas"].old, fields["spec.replicas"].new) == (2, 3)
    image = fields["spec.template.spec.containers[0].image"]
    assert (image.kind, image.old, image.new) == ("update", "nginx:1.27.3", "nginx:1.27.4")
    assert not any(f.replaces for f in fields.values())


def test_secret_change_is_marked_without_values():
    changes, _ = by_subject("update")
    (field,) = changes["Secret/demo/web-credentials"].fields
    assert field.path == "data.API_TOKEN" and field.secret
    assert field.old is None and field.new is None


def test_replace_names_the_immutable_field():
    changes, _ = by_subject("replace")
    deployment = changes["Deployment/demo/web"]
    assert deployment.op == Op.REPLACE
    assert deployment.replace_reasons == ("spec.selector.matchLabels.app",)
    replacing = [f.path for f in deployment.fields if f.replaces]
    assert replacing == ["spec.selector.matchLabels.app"]
    # A replace is one change, not a create plus a delete of the same subject.
    assert sum(1 for s in changes if s == "Deployment/demo/web") == 1


def test_create_lists_the_new_fields_but_not_identity():
    changes, _ = by_subject("update")
    created = {f.path: f.new for f in changes["ConfigMap/demo/extra"].fields}
    assert created == {"data.a": "b"}
    job = {f.path for f in changes["Job/demo/once"].fields}
    assert "spec.template.spec.containers[0].image" in job and "metadata.name" not in job


def test_deletes_carry_no_fields():
    changes, _ = by_subject("update")
    assert changes["Service/demo/web"].fields == ()


def test_a_created_secret_hides_its_data():
    event = {"resource_pre_event": {"metadata": {
        "op": "create", "type": "kubernetes:core/v1:Secret",
        "urn": "urn:pulumi:s::p::kubernetes:core/v1:Secret::core/Secret:ns/db",
        "new": {"inputs": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "ns"},
                           "type": "Opaque", "stringData": {"password": "hunter2"},
                           "data": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
                                    "ciphertext": "[secret]"}}}}}}
    (change,), _ = changes_from_events([event])
    fields = {f.path: f for f in change.fields}
    assert fields["data"].secret and fields["data"].new is None
    # Even a plain value under a Secret's data keys is never carried.
    assert fields["stringData.password"].secret and fields["stringData.password"].new is None
    assert "hunter2" not in repr(change)

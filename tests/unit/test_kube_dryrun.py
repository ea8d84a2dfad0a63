"""The verdict's reading of the API server's answers, against a fake API: which refusals stop a
commit, and which are the engine's to handle (a replacement, a namespace the commit creates)."""
from __future__ import annotations

from typing import Any

import pytest

from gitops.errors import ClusterError
from gitops.kube.api import Response
from gitops.kube.discovery import Discovery
from gitops.kube.dryrun import only_immutable_fields, verdict
from gitops.model import Manifest, ObjectId, Origin


def immutable(field: str, message: str = "field is immutable") -> dict[str, Any]:
    return {"reason": "FieldValueInvalid", "field": field, "message": f"Invalid value: x: {message}"}


def status(*causes: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Status", "status": "Failure", "reason": "Invalid", "message": "is invalid",
            "details": {"causes": list(causes)}}


@pytest.mark.parametrize("body,expected", [
    (status(immutable("spec.selector")), True),
    (status(immutable("spec.selector"), immutable("spec.clusterIP")), True),
    (status({"field": "spec", "message": "Forbidden: spec is immutable after creation except resources.requests"}),
     True),
    (status({"field": "spec", "message": "Forbidden: updates to statefulset spec for fields other than 'replicas'"}),
     True),
    (status(immutable("spec.selector"), {"field": "spec.ports[0].port", "message": "must be between 1 and 65535"}),
     False),
    (status(), False),
    ({"message": "field is immutable"}, False),  # no causes: nothing says it is the only problem
    ("not a status", False),
])
def test_only_refusals_of_immutable_fields_are_left_to_the_engine(body, expected):
    assert only_immutable_fields(body) is expected


class FakeApi:
    def __init__(self, answers: dict[str, Response]):
        self.answers = answers

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> Response:
        return self.answers.get(body["metadata"]["name"], Response(200, {}))


class Served(Discovery):
    def __init__(self) -> None:
        pass

    def find(self, group: str, version: str, kind: str) -> Any:
        class Resource:
            @staticmethod
            def path(namespace: str | None, name: str) -> str:
                return f"/{kind}/{namespace}/{name}"
        return Resource() if kind in ("Deployment", "Service", "ConfigMap") else None


def manifest(kind: str, name: str, group: str = "") -> Manifest:
    api = f"{group}/v1" if group else "v1"
    return Manifest(ObjectId(group, kind, "apps", name), api,
                    {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "apps"}},
                    Origin(f"{name}.yaml", 1))


def test_a_replacement_is_accepted_and_counted_a_real_refusal_is_not():
    api = FakeApi({"web": Response(422, status(immutable("spec.selector"))),
                   "bad": Response(422, {**status({"message": "Invalid value: 99999: must be between 1 and 65535"}),
                                         "message": "Service \"bad\" is invalid: port 99999"})})
    found = verdict(api, [manifest("Deployment", "web", "apps"), manifest("Service", "bad"),
                          manifest("ConfigMap", "ok"), manifest("Widget", "w", "example.com")], Served())
    assert [r.manifest.id.name for r in found.rejections] == ["bad", "w"]
    assert str(found.rejections[0]) == 'Service/apps/bad (bad.yaml:1): Service "bad" is invalid: port 99999'
    assert [m.id.name for m in found.replaced] == ["web"]
    assert "1 change immutable fields" in found.summary


def test_a_server_that_cannot_judge_is_no_verdict():
    api = FakeApi({"ok": Response(503, {"message": "webhook down"})})
    with pytest.raises(ClusterError, match="could not dry-run ConfigMap/apps/ok"):
        verdict(api, [manifest("ConfigMap", "ok")], Served())

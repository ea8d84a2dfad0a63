"""Where Helm's objects come from, and what becomes of hooks. Pure."""
import pytest

from gitops.manifests.load import Document, load_documents
from gitops.renderers.helm import hook_problem, is_chart, relocate, sources

OUTPUT = b"""---
# Source: shop/templates/deploy.yaml
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
# Source: shop/charts/cache/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata: {name: cache}
"""


def test_each_object_is_placed_at_its_template_under_the_chart_folder():
    documents, problems = load_documents("helm output of apps/shop", OUTPUT)
    assert not problems
    placed = [relocate(d, "apps/shop", sources(OUTPUT)) for d in documents]
    assert [(d.path, d.line, d.data["kind"]) for d in placed] == [
        ("apps/shop/templates/deploy.yaml", 1, "Deployment"),
        ("apps/shop/charts/cache/templates/cm.yaml", 1, "ConfigMap")]


def test_a_source_line_leading_outside_the_chart_is_not_believed():
    documents, _ = load_documents("out", b"# Source: shop/../../etc/passwd\nkind: ConfigMap\n")
    assert relocate(documents[0], "", sources(b"# Source: shop/../../etc/passwd\n")).path == "out"


def test_a_chart_is_a_folder_with_chart_yaml():
    assert is_chart(["apps/shop/Chart.yaml"], "apps/shop") and is_chart(["Chart.yaml"], "")
    assert not is_chart(["apps/shop/charts/sub/Chart.yaml"], "apps/shop")


def hooked(value):
    return Document("t.yaml", 3, {"kind": "Job", "metadata": {"name": "j", "annotations": {"helm.sh/hook": value}}})


@pytest.mark.parametrize("value,mode,kept,refused", [
    ("pre-install,pre-upgrade", "refuse", False, True),
    ("pre-install", "skip", False, False),
    ("post-install", "apply", True, False),
    ("test", "refuse", False, False),  # test hooks run only on `helm test`: always left out
    ("test-success, test-failure", "apply", False, False),
])
def test_hooks_are_refused_skipped_or_applied_and_tests_always_left_out(value, mode, kept, refused):
    keep, problem = hook_problem(hooked(value), mode)
    assert keep is kept and (problem is not None) is refused
    if problem:
        assert (problem.path, problem.line) == ("t.yaml", 3) and value in problem.message


def test_an_object_without_a_hook_is_kept():
    plain = Document("a.yaml", 1, {"kind": "ConfigMap", "metadata": {"name": "a"}})
    assert hook_problem(plain, "refuse") == (True, None)


def test_jsonnet_is_refused_by_name_never_read_as_an_empty_folder():
    documents, problems = load_documents("app/main.jsonnet", b"{ a: 1 }")
    assert documents == [] and [str(p) for p in problems] == [
        "app/main.jsonnet:1: Jsonnet is not rendered by gitops: render it to YAML (for instance in CI) and commit "
        "that, or skip the file in .gitopsignore"]

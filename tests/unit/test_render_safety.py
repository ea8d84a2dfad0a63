"""`render`'s output and the problems it shows, with hostile file names and values: nothing breaks
out of the YAML stream or its comment lines, no control character reaches the terminal, no
Secret value is printed, however the Secret is spelt."""
import pytest
import yaml

from gitops.desired import desired_state_from_files
from gitops.errors import ManifestError, Problem
from gitops.model import DesiredState, Manifest, ObjectId, Origin, is_secret
from gitops.render import REDACTED, to_yaml
from gitops.source.git import SourceFile

HOSTILE = ["a\n---\nkind: Secret\nmetadata: {name: x}", "\n...\n", "x\x1b[2J\x1b[31m", "x\u2028---", "x\x85---",
           "x\r\n---", "# not a comment", "tab\there", "\x00nul", "x\u202eevil", "---", "a: b", "'\"", "é\n---"]


def manifest(group="", kind="ConfigMap", name="a", namespace="apps", body=None, path="a.yaml", line=1,
             api_version=None) -> Manifest:
    api_version = api_version or (f"{group}/v1" if group else "v1")
    body = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace},
            **(body or {})}
    return Manifest(ObjectId(group, kind, namespace, name), api_version, body, Origin(path, line))


def render(*manifests: Manifest, show_secrets=False, repo="r", path=".") -> str:
    return to_yaml(DesiredState(repo=repo, commit="c" * 40, path=path, manifests=manifests), show_secrets)


def documents(text: str) -> list:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def assert_terminal_safe(text: str) -> None:
    bad = sorted({repr(c) for c in text if c != "\n" and not c.isprintable()})
    assert not bad, bad


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_names_paths_and_values_stay_inside_their_own_document(hostile):
    manifests = (manifest(name=hostile, path=f"dir/{hostile}.yaml", body={"data": {hostile: hostile}}),
                 manifest(name="b", body={"data": {"k": hostile}}))
    out = render(*manifests, repo=hostile, path=hostile)
    assert documents(out) == [dict(m.body) for m in manifests]
    assert_terminal_safe(out)
    comments = [line for line in out.splitlines() if line.startswith("#")]
    assert len(comments) == 4 + len(manifests)  # repo, commit, path, objects, one per object
    assert out.count("\n---\n") == len(manifests)


def test_the_comment_line_names_the_object_and_where_it_was_written_escaped():
    out = render(manifest(name="a\nb", path="x\n---\ny.yaml", line=7))
    assert "# ConfigMap/apps/a\\nb from x\\n---\\ny.yaml:7\n" in out


@pytest.mark.parametrize("api_version,kind", [
    ("v1", "Secret"), ("v1", "secret"), ("core/v1", "Secret"), ("Core/v1", "SECRET"), ("v1", " Secret "),
])
def test_every_spelling_of_a_secret_is_redacted(api_version, kind):
    group = api_version.rpartition("/")[0]
    for oid_group, oid_kind in ((group, kind), ("", "Secret")):
        m = Manifest(ObjectId(oid_group, oid_kind, "apps", "s"), api_version,
                     {"apiVersion": api_version, "kind": kind, "metadata": {"name": "s"},
                      "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "hunter2"}}, Origin("s.yaml", 1))
        assert is_secret(m)
        out = render(m)
        assert "hunter2" not in out and "aHVudGVyMg==" not in out
        assert documents(out)[0]["data"] == {"password": REDACTED}
        assert documents(out)[0]["stringData"] == {"token": REDACTED}
        assert "hunter2" in render(m, show_secrets=True)


@pytest.mark.parametrize("values", ["hunter2", ["hunter2"], 12345678, True])
def test_secret_data_of_the_wrong_shape_is_hidden_whole(values):
    m = manifest(kind="Secret", body={"data": values, "stringData": values})
    out = render(m)
    assert "hunter2" not in out and "12345678" not in out
    assert documents(out)[0]["data"] == REDACTED and documents(out)[0]["stringData"] == REDACTED


def test_kubectl_last_applied_annotation_of_a_secret_is_hidden_it_holds_the_values_again():
    last = '{"apiVersion":"v1","kind":"Secret","stringData":{"token":"hunter2"}}'
    m = manifest(kind="Secret", body={"stringData": {"token": "hunter2"}})
    m.body["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": last, "note": "kept"}
    out = render(m)
    assert "hunter2" not in out
    assert documents(out)[0]["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/last-applied-configuration": REDACTED, "note": "kept"}
    assert m.body["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == last


@pytest.mark.parametrize("group,kind,api_version,secret", [
    ("", "Secret", "v1", True), ("", "secret", "v1", True), ("core", "Secret", "core/v1", True),
    ("", "ConfigMap", "v1", False), ("example.com", "Secret", "example.com/v1", False),
    ("", "SecretList", "v1", False), ("bitnami.com", "SealedSecret", "bitnami.com/v1alpha1", False),
])
def test_is_secret_is_the_core_secret_however_spelt(group, kind, api_version, secret):
    assert is_secret(manifest(group=group, kind=kind, api_version=api_version)) is secret


def test_is_secret_also_reads_the_body_when_the_identity_says_otherwise():
    m = Manifest(ObjectId("", "ConfigMap", "apps", "s"), "core/v1",
                 {"apiVersion": "core/v1", "kind": "secret", "metadata": {"name": "s"}}, Origin("s.yaml", 1))
    assert is_secret(m)


def validated(text: str) -> DesiredState:
    return desired_state_from_files([SourceFile("s.yaml", text.encode())], repo="r", commit="c" * 40, path=".",
                                    namespace="apps")


@pytest.mark.parametrize("text", [
    "apiVersion: v1\nkind: secret\nmetadata: {name: s}\nstringData: {token: hunter2}\n",
    "apiVersion: core/v1\nkind: Secret\nmetadata: {name: s}\nstringData: {token: hunter2}\n",
    "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: hunter2\n",
    "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {token: hunter2}\n",
    "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: [hunter2]\n",
])
def test_misspelt_or_malformed_secrets_never_reach_render_and_their_values_are_not_shown(text):
    with pytest.raises(ManifestError) as info:
        validated(text)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("path,message", [
    ("a\nb.yaml", "x"), ("a.yaml", "x\n  b.yaml:1: fake problem"), ("a\x1b[31m.yaml", "m\x1b]0;title\x07"),
    ("a.yaml", "x\u2028y\x85z"), ("é.yaml", "\ttab"),
])
def test_problems_escape_control_characters_in_paths_and_messages(path, message):
    problem = Problem(path, 3, message)
    assert_terminal_safe(str(problem))
    assert "\n" not in str(problem)
    assert Problem(problem.path, problem.line, problem.message) == problem  # escaping twice changes nothing
    error = ManifestError([problem, Problem("b.yaml", 1, "ok")])
    assert len(str(error).splitlines()) == 3
    assert_terminal_safe(str(error).replace("\n", ""))


def test_printable_text_in_problems_is_kept_as_written():
    assert str(Problem("dir/é.yaml", 2, "name 'web' is fine: ünïcode")) == "dir/é.yaml:2: name 'web' is fine: ünïcode"


@pytest.mark.parametrize("count,shown,lines", [(100, 100, 101), (101, 100, 102), (3, 2, 4), (0, 100, 1)])
def test_manifest_error_shows_the_first_problems_then_how_many_more(count, shown, lines):
    error = ManifestError([Problem(f"f{i:03}.yaml", 1, "bad") for i in range(count)], shown=shown)
    text = str(error).splitlines()
    assert len(error.problems) == count and len(text) == lines
    if count > shown:
        assert text[-1] == f"  and {count - shown} more"
        assert text[-2] == f"  f{shown - 1:03}.yaml:1: bad"


def test_a_name_kubernetes_takes_with_a_newline_renders_inside_its_own_document():
    # RBAC names are only path segments to the API server: a newline passes validation, so render
    # itself must keep it inside the document and out of the comment line.
    s = validated('apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: "a\\n---\\nb"}\n')
    out = to_yaml(s)
    assert "# ClusterRole/a\\n---\\nb from s.yaml:1\n" in out
    assert documents(out) == [dict(s.manifests[0].body)]
    assert_terminal_safe(out)


@pytest.mark.parametrize("depth", [3, 64, 65, 999, 10_000])
def test_nesting_as_deep_as_the_api_server_takes_renders_in_linear_size(depth):
    from gitops.deep import call_deep

    spec: object = "x"
    for _ in range(depth):
        spec = {"a": spec}
    out = render(manifest(group="example.com", kind="Deep", body={"spec": spec}))
    assert len(out) < 1_000 + 8 * depth  # block style would be quadratic: 100 MB at 10,000
    loaded = call_deep(lambda: documents(out), depth)
    assert call_deep(lambda: loaded[0]["spec"] == spec, depth)

import pytest

from gitops.errors import ManifestError
from gitops.images.markers import Marker, find_markers
from gitops.images.policy import TagPolicy

P = '{"$imagepolicy": "%s"}'


def markers(text, path="m.yaml"):
    return find_markers(path, text)


def short(found):
    return [(m.line, m.column, m.source, m.field, m.value, m.policy_ref) for m in found]


def problems(text, path="m.yaml"):
    with pytest.raises(ManifestError) as info:
        find_markers(path, text)
    return [str(p) for p in info.value.problems]


# --- Flux v2 setter comments ---------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    (f"image: ghcr.io/org/app:1.2.3 # {P % 'flux-system:app'}\n",
     [(1, 7, "ghcr.io/org/app:1.2.3", "image", "ghcr.io/org/app:1.2.3", "flux-system:app")]),
    (f'image: "ghcr.io/org/app:1.2.3" # {P % "app"}\n',
     [(1, 7, '"ghcr.io/org/app:1.2.3"', "image", "ghcr.io/org/app:1.2.3", "app")]),
    (f"image: 'nginx:1.2'   #   {P % 'ns:web'}   \n", [(1, 7, "'nginx:1.2'", "image", "nginx:1.2", "ns:web")]),
    (f"tag: 1.2.3 # {P % 'flux-system:app:tag'}\n", [(1, 5, "1.2.3", "tag", "1.2.3", "flux-system:app")]),
    (f"tag: '1.2.3' # {P % 'app:tag'}\n", [(1, 5, "'1.2.3'", "tag", "1.2.3", "app")]),
    (f"repository: ghcr.io/org/app # {P % 'flux-system:app:name'}\n",
     [(1, 12, "ghcr.io/org/app", "name", "ghcr.io/org/app", "flux-system:app")]),
    # Helm-values-like nesting, any key name
    (f"app:\n  image:\n    registry: ghcr.io\n    repo: ghcr.io/org/app # {P % 'a:name'}\n"
     f"    version: v1 # {P % 'a:tag'}\n",
     [(4, 10, "ghcr.io/org/app", "name", "ghcr.io/org/app", "a"), (5, 13, "v1", "tag", "v1", "a")]),
    # sequence items
    (f"args:\n- --flag\n- ghcr.io/org/tool:0.1.0 # {P % 'tool'}\n",
     [(3, 2, "ghcr.io/org/tool:0.1.0", "image", "ghcr.io/org/tool:0.1.0", "tool")]),
    # flow style over several lines, with a trailing comma
    (f'values: {{\n  image: "x/y:1", # {P % "p"}\n  other: 2\n}}\n', [(2, 9, '"x/y:1"', "image", "x/y:1", "p")]),
    # other keys in the JSON are fine; a comment without $imagepolicy is nobody's business
    ('image: nginx:1 # {"$imagepolicy": "p", "note": "x"}\nother: nginx:2 # {"$kpt-set": "x"}\n',
     [(1, 7, "nginx:1", "image", "nginx:1", "p")]),
    # a standalone comment that mentions the setter is documentation, not a marker
    (f"# use {P % 'ns:name'} to mark images\nimage: nginx:1\n", []),
    # inside a block scalar, `#` is text, not a comment
    (f"script: |\n  echo {P % 'x'}\n  done\n", []),
    # anchors and tags precede the value; the marker points at the value itself
    (f"image: &img nginx:1 # {P % 'p'}\nagain: *img\ntag: !!str 1.2 # {P % 'p:tag'}\n",
     [(1, 12, "nginx:1", "image", "nginx:1", "p"), (3, 11, "1.2", "tag", "1.2", "p")]),
])
def test_setter_comments(text, expected):
    assert short(markers(text)) == expected


def test_two_markers_on_consecutive_lines_and_multi_document_files():
    text = (f"kind: ConfigMap\nmetadata: {{name: a}}\ndata:\n  image: nginx:1 # {P % 'n'}\n"
            f"---\n---\n# comment\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: apps\n"
            f"spec:\n  template:\n    spec:\n      initContainers:\n"
            f"      - name: init\n        image: busybox:1 # {P % 'ns:bb'}\n"
            f"      containers:\n      - name: app\n        image: ghcr.io/o/app:1.0.0 # {P % 'ns:app'}\n"
            f"      - {{name: side, image: 'ghcr.io/o/side:2' }} # not ours\n")
    found = markers(text)
    assert short(found) == [
        (4, 9, "nginx:1", "image", "nginx:1", "n"),
        (18, 15, "busybox:1", "image", "busybox:1", "ns:bb"),
        (21, 15, "ghcr.io/o/app:1.0.0", "image", "ghcr.io/o/app:1.0.0", "ns:app"),
    ]
    assert [(m.subject, m.container) for m in found] == [
        ("ConfigMap/a", None), ("Deployment/apps/web", "init"), ("Deployment/apps/web", "app")]
    assert all(m.path == "m.yaml" and m.inline_policy is None and not m.locked for m in found)


def test_lines_and_columns_with_crlf_bom_and_bytes():
    text = f"\ufeffa: 1\r\nimage: nginx:1 # {P % 'p'}\r\ntag: \"é-1\" # {P % 'p:tag'}"
    found = find_markers("m.yaml", text.encode("utf-8"))
    assert short(found) == [(2, 7, "nginx:1", "image", "nginx:1", "p"), (3, 5, '"é-1"', "tag", "é-1", "p")]


def test_json_files_with_tabs_are_read():
    text = ('{\n\t"apiVersion": "apps/v1", "kind": "Deployment",\n'
            '\t"metadata": {"name": "w", "annotations": {"fluxcd.io/automated": "true"}},\n'
            '\t"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx:1.2.3"}]}}}\n}\n')
    (m,) = find_markers("w.json", text)
    assert (m.line, m.column, m.source, m.policy_ref) == (4, 70, '"nginx:1.2.3"', "v1:Deployment//w/a")


def test_files_without_markers_are_not_parsed():
    assert find_markers("x.yaml", "this: [is not: valid yaml") == ()


# --- Flux v1 annotations -------------------------------------------------------------------

def workload(kind="Deployment", annotations="", pod="", namespace="  namespace: apps\n", prefix="fluxcd.io"):
    ann = annotations.replace("P/", f"{prefix}/")
    pod = pod or ("containers:\n- name: app\n  image: ghcr.io/o/app:1.2.3\n- name: side\n  image: \"nginx:1.25.0\"\n"
                  "initContainers:\n- name: init\n  image: busybox:1.36.0\n")
    indent = {"Pod": 2, "CronJob": 10}.get(kind, 6)
    path = {"Pod": "spec:\n", "CronJob": "spec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n"}.get(
        kind, "spec:\n  template:\n    spec:\n")
    body = "".join(" " * indent + line + "\n" for line in pod.splitlines())
    return (f"apiVersion: x/v1\nkind: {kind}\nmetadata:\n  name: web\n{namespace}  annotations:\n"
            + "".join(f"    {line}\n" for line in ann.splitlines()) + path + body)


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"])
@pytest.mark.parametrize("prefix", ["fluxcd.io", "flux.weave.works"])
def test_v1_automation_covers_containers_and_init_containers(kind, prefix):
    text = workload(kind, 'P/automated: "true"\nP/tag.app: semver:~1.2\nP/tag.init: glob:1.36.*', prefix=prefix)
    found = markers(text)
    by_container = {m.container: m for m in found}
    assert sorted(by_container) == ["app", "init", "side"]
    app = by_container["app"]
    assert (app.field, app.value, app.source, app.subject) == ("image", "ghcr.io/o/app:1.2.3", "ghcr.io/o/app:1.2.3",
                                                                f"{kind}/apps/web")
    assert app.policy_ref == f"v1:{kind}/apps/web/app"
    assert app.inline_policy == TagPolicy(f"v1:{kind}/apps/web/app", image="ghcr.io/o/app", semver="~1.2")
    assert by_container["init"].inline_policy.glob == "1.36.*"
    # no filter: follow the highest release
    assert by_container["side"].inline_policy.semver == "*"
    assert by_container["side"].source == '"nginx:1.25.0"'
    line_of_app_image = text.splitlines().index(next(ln for ln in text.splitlines() if "ghcr.io/o/app" in ln)) + 1
    assert (app.line == line_of_app_image
            and text.splitlines()[app.line - 1][app.column:].startswith("ghcr.io/o/app:1.2.3"))


@pytest.mark.parametrize("annotations", ["", 'P/automated: "false"', "P/tag.app: semver:~1.2", 'P/locked: "true"'])
def test_v1_without_automation_marks_nothing(annotations):
    assert markers(workload(annotations=annotations or "x: y")) == ()


def test_v1_locked_workloads_are_reported_locked_and_without_a_namespace_it_stays_empty():
    found = markers(workload(annotations='P/automated: "true"\nP/locked: "true"', namespace=""))
    assert found and all(m.locked for m in found)
    assert {m.subject for m in found} == {"Deployment/web"}
    assert {m.policy_ref for m in found} == {"v1:Deployment//web/app", "v1:Deployment//web/side",
                                             "v1:Deployment//web/init"}


def test_locked_applies_to_setter_comments_in_the_same_object():
    text = ('kind: Deployment\nmetadata:\n  name: w\n  annotations: {fluxcd.io/locked: "true"}\n'
            f'x: nginx:1 # {P % "p"}\n')
    (m,) = markers(text)
    assert m.locked and m.policy_ref == "p"


def test_a_setter_comment_wins_over_v1_automation_on_the_same_image():
    pod = f"containers:\n- name: app\n  image: ghcr.io/o/app:1.2.3 # {P % 'ns:app'}\n"
    found = markers(workload(annotations='P/automated: "true"', pod=pod))
    assert [(m.policy_ref, m.inline_policy) for m in found] == [("ns:app", None)]


def test_v1_list_items_are_objects():
    text = ("apiVersion: v1\nkind: List\nitems:\n"
            "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p\n    annotations: {fluxcd.io/automated: 'true'}\n"
            "  spec:\n    containers: [{name: c, image: nginx:1.0.0}]\n")
    (m,) = markers(text)
    assert (m.subject, m.policy_ref, m.line, m.column, m.source) == ("Pod/p", "v1:Pod//p/c", 10, 34, "nginx:1.0.0")


# --- problems ------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ('image: nginx:1 # {"$imagepolicy": flux}\n',
     'm.yaml:1: malformed $imagepolicy comment \'{"$imagepolicy": flux}\': not JSON'),
    ('image: nginx:1 # {"$imagepolicy": 3}\n', "m.yaml:1: malformed $imagepolicy comment"),
    ('image: nginx:1 # ["$imagepolicy"]\n', "m.yaml:1: malformed $imagepolicy comment"),
    (f"image: nginx:1 # {P % 'a:b:c'}\n", "m.yaml:1: malformed $imagepolicy reference 'a:b:c'"),
    (f"image: nginx:1 # {P % ''}\n", "m.yaml:1: malformed $imagepolicy reference ''"),
    (f"image: nginx:1 # {P % 'ns: x'}\n", "m.yaml:1: malformed $imagepolicy reference 'ns: x'"),
    (f"image: # {P % 'p'}\n", "m.yaml:1: the $imagepolicy comment must directly follow"),
    (f"images: [nginx:1] # {P % 'p'}\n", "m.yaml:1: the $imagepolicy comment must directly follow"),
    (f"image:\n  nginx:1\n  more # {P % 'p'}\n", "m.yaml:3: the $imagepolicy comment must directly follow"),
    (f"a: 1\nimage: Nginx:1 # {P % 'p'}\n", "m.yaml:2: $imagepolicy p: invalid image reference 'Nginx:1'"),
    ('image: nginx:1 # {"$imagepolicy": "p"\n', "m.yaml:1: malformed $imagepolicy comment"),
    (f"a: [1\nimage: nginx:1 # {P % 'p'}\n", "m.yaml:2: invalid YAML"),
])
def test_each_problem_names_path_and_line(text, expected):
    (found,) = problems(text)
    assert found.startswith(expected), found


def test_v1_problems():
    text = workload(annotations='P/automated: "true"\nP/tag.app: semver:not-a-range\nP/tag.ap: semver:~1\n'
                                'P/tag.side: "regex:("')
    found = problems(text)
    assert len(found) == 3
    assert found[0].startswith("m.yaml:8: Deployment/apps/web: container app: invalid semver range 'not-a-range'")
    assert found[1].startswith("m.yaml:9: Deployment/apps/web: tag filter for container 'ap', "
                               "which this workload does not have (containers: init, app, side)")
    assert found[2].startswith("m.yaml:10: Deployment/apps/web: container side: invalid regex in tag filter 'regex:('")


def test_all_problems_of_a_file_are_reported_at_once():
    text = (f'a: nginx:1 # {{"$imagepolicy": x}}\nb: fine:1 # {P % "ok"}\nc: # {P % "p"}\n---\n'
            f"d: nginx:1 # {P % 'a:b:c'}\n")
    with pytest.raises(ManifestError) as info:
        find_markers("f.yaml", text)
    assert [(p.path, p.line) for p in info.value.problems] == [("f.yaml", 1), ("f.yaml", 3), ("f.yaml", 5)]
    assert "3 problems" in str(info.value)


def test_marker_location():
    m = Marker("a.yaml", 3, 0, "x", "tag", "x", "p")
    assert m.location == "a.yaml:3"

"""Markers + policies + tag lists -> checks, choices, commit-message updates and rewritten files."""
import pytest

from gitops.errors import ManifestError, SettingsError
from gitops.images.automation import (
    ImageCheck,
    apply_choices,
    choices,
    decode_choices,
    encode_choices,
    find_all_markers,
    images_to_list,
    load_policies,
    marked_files,
    plan_checks,
    policy_for,
    rewrite_file,
    updates,
)
from gitops.images.markers import Marker, find_markers
from gitops.images.message import ImageUpdate
from gitops.images.policy import Selection, TagPolicy
from gitops.source.git import SourceFile

P = '{"$imagepolicy": "%s"}'
APP = TagPolicy("app", image="ghcr.io/o/app", semver="^1.0")
WEB = TagPolicy("web", image="127.0.0.1:5000/demo/web")
POLICIES = {"app": APP, "web": WEB}


def deployment(image_line, name="web", extra=""):
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: apps\n{extra}"
            f"spec:\n  template:\n    spec:\n      containers:\n      - name: main\n        {image_line}\n")


def f(path, text):
    return SourceFile(path, text.encode() if isinstance(text, str) else text)


def marker(policy_ref="app", value="ghcr.io/o/app:1.0.0", field="image", path="a.yaml", line=1, **kw):
    return Marker(path, line, 7, value, field, value, policy_ref, **kw)


def check(m, chosen, image="ghcr.io/o/app", current="1.0.0", policy=APP):
    return ImageCheck(m, policy, image, current, Selection(chosen, "why", 3))


# --- which files, which markers --------------------------------------------------------------

def test_marked_files_follow_the_manifest_selection():
    files = [f("deploy/app.yaml", "a: 1"), f("deploy/sub/b.yml", "b: 1"), f("deploy/c.json", "{}"),
             f("deploy/.hidden.yaml", "x: 1"), f("deploy/.gitops/images.yaml", "policies: {}"),
             f("deploy/skip/d.yaml", "d: 1"), f("deploy/e.yaml.bak", "e: 1"), f("deploy/kustomization.yaml", "k: 1"),
             f("deploy/.gitopsignore", "skip/\n"), f("other/x.yaml", "x: 1"), f("README.md", "# hi"),
             f(".gitopsignore", "app.yaml\n")]  # the repo root's ignore file is not the folder's
    chosen = marked_files(files, "deploy/")
    assert [x.path for x in chosen] == ["deploy/app.yaml", "deploy/c.json", "deploy/sub/b.yml"]
    assert chosen[0] is files[0]


def test_marked_files_at_the_root_use_the_root_ignore_file():
    files = [f("a.yaml", "a"), f("b/c.yaml", "c"), f(".gitopsignore", "b/\n"), f(".github/ci.yml", "x")]
    for path in (".", ""):
        assert [x.path for x in marked_files(files, path)] == ["a.yaml"]


def test_find_all_markers_reports_every_file_at_once():
    files = [f("a.yaml", f"image: nginx:1 # {P % 'a:b:c'}\n"),
             f("b.yaml", f"image: ghcr.io/o/app:1.0.0 # {P % 'app'}\n"),
             f("c.yaml", "x: [1\nimage: nginx:1 # {P}\n".replace("{P}", P % "p"))]
    with pytest.raises(ManifestError) as info:
        find_all_markers(files)
    assert [(p.path, p.line) for p in info.value.problems] == [("a.yaml", 1), ("c.yaml", 2)]
    assert "2 problems" in str(info.value)


def test_find_all_markers_in_file_order():
    files = [f("a.yaml", f"image: ghcr.io/o/app:1.0.0 # {P % 'app'}\n"), f("b.yaml", "nothing: here\n"),
             f("c.yaml", f"x: 1\ntag: 2.0.0 # {P % 'ns:web:tag'}\n")]
    found = find_all_markers(files)
    assert [(m.path, m.line, m.field, m.policy_ref) for m in found] == [
        ("a.yaml", 1, "image", "app"), ("c.yaml", 2, "tag", "ns:web")]


# --- policies --------------------------------------------------------------------------------

SETTINGS_WHERE = "Pulumi.dev.yaml: gitops:imagePolicies"


def test_load_policies_merges_settings_and_the_policy_file():
    file = f(".gitops/images.yaml", "policies:\n  web:\n    image: 127.0.0.1:5000/demo/web\n    semver: '~2.0'\n"
                                    "  flux-system:db:\n    image: postgres\n    pattern: '^(\\d+)$'\n"
                                    "    order: numerical\n")
    policies = load_policies({"app": {"image": "ghcr.io/o/app", "semver": "^1.0"}}, SETTINGS_WHERE, file)
    assert policies == {
        "app": TagPolicy("app", image="ghcr.io/o/app", semver="^1.0"),
        "web": TagPolicy("web", image="127.0.0.1:5000/demo/web", semver="~2.0"),
        "flux-system:db": TagPolicy("flux-system:db", image="postgres", pattern="^(\\d+)$", order="numerical"),
    }


def test_load_policies_without_a_file_or_with_an_empty_table():
    assert load_policies({"app": {"image": "ghcr.io/o/app"}}, SETTINGS_WHERE, None) == {
        "app": TagPolicy("app", image="ghcr.io/o/app")}
    assert load_policies({}, SETTINGS_WHERE, f("p.yaml", "policies: {}\n")) == {}


def test_a_name_in_both_places_names_both():
    file = f("deploy/.gitops/images.yaml", "policies:\n  app:\n    image: ghcr.io/o/other\n")
    with pytest.raises(SettingsError) as info:
        load_policies({"app": {"image": "ghcr.io/o/app"}}, SETTINGS_WHERE, file)
    message = str(info.value)
    assert "deploy/.gitops/images.yaml" in message and SETTINGS_WHERE in message and "policies.app" in message


@pytest.mark.parametrize("text,expected", [
    ("policies: [1, 2\n", "invalid YAML"),
    ("policies:\n  a: b\n   c: d\n", "invalid YAML"),
    ("- app\n", "expected a `policies:` mapping"),
    ("other: {}\n", "expected a `policies:` mapping"),
    ("policies: [app]\n", "expected a `policies:` mapping"),
    ("policies:\n  app: ghcr.io/o/app\n", "policies.app: must be a mapping"),
    ("policies:\n  app:\n    image: ghcr.io/o/app\n    semver: nope\n", "policies.app.semver"),
    ("policies:\n  app:\n    semver: ^1\n", "policies.app.image: missing"),
])
def test_bad_policy_files_name_the_file(text, expected):
    with pytest.raises(SettingsError) as info:
        load_policies({}, SETTINGS_WHERE, f("deploy/.gitops/images.yaml", text))
    assert str(info.value).startswith("deploy/.gitops/images.yaml"), str(info.value)
    assert expected in str(info.value)


def test_bad_settings_policies_name_the_settings():
    with pytest.raises(SettingsError, match=f"^{SETTINGS_WHERE}.app.image: missing"):
        load_policies({"app": {"semver": "^1"}}, SETTINGS_WHERE, None)


def test_policy_for():
    inline = TagPolicy("v1:Deployment/apps/web/main", image="ghcr.io/o/app", glob="1.*")
    named = {"app": APP, "flux-system:app": TagPolicy("flux-system:app", image="ghcr.io/o/exact"),
             "web": WEB}
    # v1: the inline policy wins even when a named policy has the same reference
    assert policy_for(marker("app", inline_policy=inline), named) is inline
    # v2: the exact `ns:name` first, then the bare name
    assert policy_for(marker("flux-system:app"), named) is named["flux-system:app"]
    assert policy_for(marker("other-ns:web"), named) is WEB
    assert policy_for(marker("web"), named) is WEB
    assert policy_for(marker("nope"), named) is None
    assert policy_for(marker("ns:nope"), named) is None
    # a bare reference does not reach into a namespaced policy name
    assert policy_for(marker("app"), {"flux-system:app": APP}) is None


# --- checks ----------------------------------------------------------------------------------

def test_plan_checks():
    ms = [marker("app"),                                                        # moves to 1.2.0
          marker("web", "127.0.0.1:5000/demo/web:2.0.0", line=2),            # already at the choice
          marker("gone", line=3),                                               # unknown policy
          marker("ns:db", "postgres:15", line=4),                               # registry error
          marker("app", line=5, locked=True),                                   # locked
          marker("app", "1.0.0", field="tag", line=6),                          # tag-only field via the policy image
          marker("web", "127.0.0.1:5000/demo/web", field="name", line=7)]      # name-only field: a tag never moves it
    policies = {**POLICIES, "db": TagPolicy("db", image="postgres")}
    tags = {"ghcr.io/o/app": ["1.0.0", "1.2.0", "2.0.0"], "127.0.0.1:5000/demo/web": ["1.0.0", "2.0.0"],
            "postgres": "rate limited by the registry (HTTP 429) (registry registry-1.docker.io)"}
    checks = plan_checks(ms, policies, tags)
    got = [(c.marker.line, c.image, c.current, c.chosen, c.moves, c.problem) for c in checks]
    assert got == [
        (1, "ghcr.io/o/app", "1.0.0", "1.2.0", True, None),
        (2, "127.0.0.1:5000/demo/web", "2.0.0", "2.0.0", False, None),
        (3, "", "1.0.0", None, False, "no image policy named 'gone' (known: app, db, web)"),
        (4, "postgres", "15", None, False, "rate limited by the registry (HTTP 429) (registry registry-1.docker.io)"),
        (5, "ghcr.io/o/app", "1.0.0", "1.2.0", False, None),
        (6, "ghcr.io/o/app", "1.0.0", "1.2.0", True, None),
        (7, "127.0.0.1:5000/demo/web", "", "2.0.0", False, None),
    ]
    assert checks[0].policy is APP and checks[2].policy is None
    assert "highest" in checks[0].selection.reason


def test_plan_checks_without_policies_or_tag_lists():
    (unknown,) = plan_checks([marker("x")], {}, {})
    assert unknown.problem == "no image policy named 'x' (known: none)"
    (unlisted,) = plan_checks([marker("app")], POLICIES, {})
    assert unlisted.problem == "tags not listed" and not unlisted.moves
    # a tag-only field whose policy names no image cannot be listed at all
    inline = TagPolicy("v1:x", image="")
    (tag_only,) = plan_checks([marker("v1:x", "1.0", field="tag", inline_policy=inline)], {}, {})
    assert "names no image" in tag_only.problem and tag_only.image == ""


def test_name_and_tag_markers_of_helm_values_move_only_with_the_tag():
    # The `:name` field holds no tag: with the tag already at the choice nothing moves, so the
    # watcher neither reports it nor tries a write-back every scan.
    def values(tag):
        return f("values.yaml", f"image:\n  repository: ghcr.io/o/app # {P % 'flux-system:app:name'}\n"
                                f"  tag: {tag} # {P % 'flux-system:app:tag'}\n")

    tags = {"ghcr.io/o/app": ["1.0.0", "1.2.0"]}
    settled = plan_checks(find_all_markers([values("1.2.0")]), POLICIES, tags)
    assert [(c.marker.field, c.current, c.chosen, c.moves) for c in settled] == [
        ("name", "", "1.2.0", False), ("tag", "1.2.0", "1.2.0", False)]
    assert choices(settled) == {} and updates(settled) == []
    behind = plan_checks(find_all_markers([values("1.0.0")]), POLICIES, tags)
    assert [c.moves for c in behind] == [False, True]
    assert updates(behind) == [ImageUpdate("ghcr.io/o/app", "1.0.0", "1.2.0", ("values.yaml",))]
    assert rewrite_file("values.yaml", values("1.0.0").data, choices(behind)) == values("1.2.0").data


def test_no_tag_fits_is_no_move():
    (c,) = plan_checks([marker("app")], POLICIES, {"ghcr.io/o/app": ["2.0.0", "latest"]})
    assert c.chosen is None and not c.moves and c.problem is None
    assert c.selection.reason.startswith("no tag matches")


def test_images_to_list_names_each_repository_once():
    inline = TagPolicy("v1:Deployment/apps/x/c", image="ghcr.io/o/v1")
    ms = [marker("app"), marker("app", "1.0.0", field="tag"), marker("flux-system:app", line=3),
          marker("web", "127.0.0.1:5000/demo/web:1"), marker("unknown"),
          marker("v1:Deployment/apps/x/c", "ghcr.io/o/v1:1", inline_policy=inline),
          marker("v1:Deployment/apps/y/c", "ghcr.io/o/v1:2", inline_policy=inline),
          marker("v1:tagonly", "1", field="tag", inline_policy=TagPolicy("v1:tagonly"))]
    assert images_to_list(ms, POLICIES) == ["ghcr.io/o/app", "127.0.0.1:5000/demo/web", "ghcr.io/o/v1"]


def test_images_to_list_uses_the_marked_image_when_the_policy_names_none():
    inline = TagPolicy("v1:p", image="")
    assert images_to_list([marker("v1:p", "ghcr.io/o/x:1@sha256:" + "ab" * 32, inline_policy=inline)], {}) == [
        "ghcr.io/o/x"]


# --- choices and commit-message updates -------------------------------------------------------

def test_choices_and_updates_group_paths_per_image_and_tags():
    checks = [
        check(marker("app", path="b.yaml"), "1.2.0"),
        check(marker("app", path="a.yaml"), "1.2.0"),
        check(marker("app", path="a.yaml", line=9), "1.2.0"),                       # same file twice: listed once
        check(marker("ns:app", path="c.yaml"), "1.2.0", current="1.1.0"),            # other old tag: own entry
        check(marker("web", path="z.yaml"), "2.0.0", image="127.0.0.1:5000/demo/web", current="1.0.0", policy=WEB),
        check(marker("still", path="d.yaml"), "1.0.0"),                              # not moving
        check(marker("locked", path="e.yaml", locked=True), "9.9.9"),                # locked
        ImageCheck(marker("broken", path="f.yaml"), None, "", "1.0.0", problem="x"),  # no choice
    ]
    assert choices(checks) == {"app": "1.2.0", "ns:app": "1.2.0", "web": "2.0.0"}
    assert updates(checks) == [
        ImageUpdate("127.0.0.1:5000/demo/web", "1.0.0", "2.0.0", ("z.yaml",)),
        ImageUpdate("ghcr.io/o/app", "1.0.0", "1.2.0", ("a.yaml", "b.yaml")),
        ImageUpdate("ghcr.io/o/app", "1.1.0", "1.2.0", ("c.yaml",)),
    ]
    assert choices([]) == {} and updates([]) == []


# --- rewriting -------------------------------------------------------------------------------

def test_rewrite_file_finds_the_markers_again_in_a_newer_file():
    old = deployment(f"image: ghcr.io/o/app:1.0.0 # {P % 'flux-system:app'}")
    (m,) = find_markers("d.yaml", old)
    # Someone pushed meanwhile: lines above the marker, and a new unmarked image with the same text.
    newer = old.replace("metadata:\n", "metadata:\n  labels:\n    a: b\n    c: d\n", 1).replace(
        "      containers:\n", "      initContainers:\n      - name: init\n        image: ghcr.io/o/app:1.0.0\n"
                                "      containers:\n")
    assert find_markers("d.yaml", newer)[0].line == m.line + 6
    out = rewrite_file("d.yaml", newer.encode(), {"flux-system:app": "1.2.0"})
    assert out == newer.replace(f"app:1.0.0 # {P % 'flux-system:app'}", f"app:1.2.0 # {P % 'flux-system:app'}").encode()
    assert b"image: ghcr.io/o/app:1.0.0\n" in out  # the unmarked one stays


@pytest.mark.parametrize("data,chosen", [
    (deployment(f"image: ghcr.io/o/app:1.2.0 # {P % 'app'}"), {"app": "1.2.0"}),  # already there
    (deployment(f"image: ghcr.io/o/app:1.0.0 # {P % 'app'}"), {"other": "1.2.0"}),  # not this policy
    (deployment(f"image: ghcr.io/o/app:1.0.0 # {P % 'app'}"), {}),
    (deployment("image: ghcr.io/o/app:1.0.0"), {"app": "1.2.0"}),  # the marker is gone in the newer file
    (deployment(f"image: ghcr.io/o/app:1.0.0 # {P % 'app'}", extra='  annotations: {fluxcd.io/locked: "true"}\n'),
     {"app": "1.2.0"}),
])
def test_rewrite_file_gives_none_when_nothing_changes(data, chosen):
    assert rewrite_file("d.yaml", data.encode(), chosen) is None


def test_rewrite_file_ignores_files_that_are_not_utf8():
    assert rewrite_file("d.yaml", b"image: nginx:1 \xff\xfe" + (P % "app").encode(), {"app": "2"}) is None


def test_rewrite_file_keeps_crlf_bom_and_every_other_byte():
    data = ("\ufeff# top comment  \r\napiVersion: v1\r\nkind: ConfigMap\r\nmetadata: {name: c}\r\ndata:\r\n"
            f"  image: \"ghcr.io/o/app:1.0.0\"   # {P % 'app'}\r\n"
            f"  tag: '1.0.0' # {P % 'app:tag'}\r\n  other: ghcr.io/o/app:1.0.0\r\n  é: ü").encode()
    out = rewrite_file("c.yaml", data, {"app": "1.10.0"})
    expected = data.replace(b'"ghcr.io/o/app:1.0.0"', b'"ghcr.io/o/app:1.10.0"').replace(b"'1.0.0'", b"'1.10.0'")
    assert out == expected
    assert out.count(b"\r\n") == data.count(b"\r\n") and out.startswith(b"\xef\xbb\xbf")


def test_rewrite_file_raises_for_a_newer_file_with_a_broken_marker():
    with pytest.raises(ManifestError, match=r"d.yaml:1"):
        rewrite_file("d.yaml", b'image: nginx:1 # {"$imagepolicy": broken}\n', {"broken": "2"})


def test_apply_choices_changes_only_the_files_with_chosen_markers():
    files = [
        f("a.yaml", deployment(f"image: ghcr.io/o/app:1.0.0 # {P % 'flux-system:app'}")),
        f("b.yaml", deployment("image: ghcr.io/o/app:1.0.0")),                       # no marker
        f("c.yaml", deployment(f"image: ghcr.io/o/app:1.2.0 # {P % 'flux-system:app'}")),  # already there
        f("d.json", f'{{\n  "image": "ghcr.io/o/app:1.0.0", # {P % "other"}\n  "x": 1\n}}'),  # another policy
        f("README.md", f"image: ghcr.io/o/app:1.0.0 # {P % 'flux-system:app'}\n"),   # not a manifest file
        f("e.yml", f"tag: 1.0.0 # {P % 'flux-system:app:tag'}\r\n"),
        f("bin.yaml", b"\xff\xfe\x00"),
    ]
    out = apply_choices(files, {"flux-system:app": "1.2.0"}, ".")
    assert [x.path for x in out] == [x.path for x in files]
    assert out[0].data == files[0].data.replace(b"app:1.0.0", b"app:1.2.0")
    assert out[5].data == b"tag: 1.2.0 # " + (P % "flux-system:app:tag").encode() + b"\r\n"
    for i in (1, 2, 3, 4, 6):
        assert out[i] is files[i]
    assert files[0].data.count(b"1.0.0") == 1  # the input is left as it was


def test_apply_choices_with_the_stack_path_touches_only_the_files_the_scanner_reads():
    helm = "{{- if .Values.on }}\nmetadata:\n  annotations:\n    fluxcd.io/automated: 'true'\n{{- end }}\n"
    marked = f"image: ghcr.io/o/app:1.0.0 # {P % 'app'}\n"
    files = [f("deploy/.gitopsignore", "chart/\n"), f("deploy/chart/templates/d.yaml", helm),
             f("deploy/.gitops/images.yaml", marked), f("deploy/kustomization.yaml", marked),
             f("deploy/app.yaml", marked)]
    # The ignored Helm template is not YAML; hidden and kustomize files are never manifests.
    out = apply_choices(files, {"app": "1.2.0"}, path="deploy")
    assert out[4].data == marked.replace("1.0.0", "1.2.0").encode()
    assert all(out[i] is files[i] for i in range(4))


def test_apply_choices_without_choices_is_the_same_files():
    files = [f("a.yaml", f"image: ghcr.io/o/app:1.0.0 # {P % 'app'}\n")]
    out = apply_choices(files, {}, ".")
    assert out == files and out[0] is files[0]


# --- choices passed to the Pulumi program ------------------------------------------------------

@pytest.mark.parametrize("chosen", [{}, {"b": "1.2.0", "a": "2", "v1:Deployment/ns/w/c": "é-1"}])
def test_encode_decode_round_trip(chosen):
    text = encode_choices(chosen)
    assert decode_choices(text) == chosen
    assert "\n" not in text and " " not in text


def test_encoding_is_stable_whatever_the_insertion_order():
    assert encode_choices({"b": "1", "a": "2"}) == encode_choices({"a": "2", "b": "1"}) == '{"a":"2","b":"1"}'


@pytest.mark.parametrize("text,expected", [
    ("", "not valid JSON"),
    ("{a: 1}", "not valid JSON"),
    ('["a", "1"]', "must map policy names to tags"),
    ('{"a": 1}', "must map policy names to tags"),
    ('{"a": null}', "must map policy names to tags"),
    ('"a"', "must map policy names to tags"),
])
def test_decode_errors(text, expected):
    with pytest.raises(SettingsError, match=expected):
        decode_choices(text)


@pytest.mark.parametrize("text,expected", [
    ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)),
     "excessive aliasing"),
    ("policies: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested deeper than 10,000 levels"),
    ("policies: {}\npolicies: {}\n", "duplicate key 'policies'"),
    ("policies: {}\n---\npolicies: {}\n", "one document expected"),
    ("policies:\n  app: {image: x}\n" + "#" * (1024 * 1024) + "\n", "at most 1024 KiB"),
])
def test_a_hostile_policy_file_is_one_clear_error(text, expected):
    with pytest.raises(SettingsError) as info:
        load_policies({}, SETTINGS_WHERE, f("deploy/.gitops/images.yaml", text))
    assert str(info.value).startswith("deploy/.gitops/images.yaml"), str(info.value)
    assert expected in str(info.value)

import pytest
import yaml

from gitops.errors import ManifestError
from gitops.images.markers import Marker, find_markers
from gitops.images.rewrite import Edit, apply_edits, render_scalar, updates_for

P = '{"$imagepolicy": "%s"}'
DIGEST = "sha256:" + "ab" * 32


def rewrite(text, chosen, path="f.yaml"):
    return apply_edits(text, updates_for(find_markers(path, text), chosen))


def assert_only_spans_changed(before, after, replacements):
    """Every byte outside the replaced spans is identical, in order."""
    pos_before = pos_after = 0
    for old, new in replacements:
        i = before.index(old, pos_before)
        j = after.index(new, pos_after)
        assert before[pos_before:i] == after[pos_after:j]
        pos_before, pos_after = i + len(old), j + len(new)
    assert before[pos_before:] == after[pos_after:]


@pytest.mark.parametrize("line,chosen,expected", [
    (f"image: nginx:1.2 # {P % 'ns:web'}", "1.3", "nginx:1.3"),
    (f"image: nginx:1.2 # {P % 'ns:web'}", "docker.io/library/nginx:1.3", "nginx:1.3"),  # same repo: spelling kept
    (f"image: nginx:1.2 # {P % 'ns:web'}", "ghcr.io/mirror/nginx:1.3", "ghcr.io/mirror/nginx:1.3"),  # moved
    (f"image: \"127.0.0.1:5000/demo/web:1.0\" # {P % 'web'}", "1.1", '"127.0.0.1:5000/demo/web:1.1"'),
    (f"image: 'ghcr.io/o/a:1.0@{DIGEST}' # {P % 'web'}", "1.1", "'ghcr.io/o/a:1.1'"),
    (f"image: nginx # {P % 'web'}", "1.3", "nginx:1.3"),
    (f"tag: 1.2.3 # {P % 'web:tag'}", "1.2.4", "1.2.4"),
    (f"tag: 1.2.3 # {P % 'web:tag'}", "1.10", '"1.10"'),  # plain 1.10 would read as a float
    (f"tag: 1.2 # {P % 'web:tag'}", "1.3", "1.3"),  # already a float: the user's choice stays
    (f"tag: 123 # {P % 'web:tag'}", "124", "124"),
    (f"tag: main # {P % 'web:tag'}", "true", '"true"'),
    (f"tag: '1.2.3' # {P % 'web:tag'}", "1.10", "'1.10'"),
    (f"tag: \"1.2.3\" # {P % 'web:tag'}", "ghcr.io/o/a:1.3.0", '"1.3.0"'),
    (f"repo: ghcr.io/o/a # {P % 'web:name'}", "ghcr.io/mirror/a:2.0.0", "ghcr.io/mirror/a"),
])
def test_one_marker_is_rewritten_in_its_style(line, chosen, expected):
    text = f"# head\n{line}\n"
    ref = line.split('"$imagepolicy": "')[1].split('"')[0].rsplit(":tag", 1)[0].rsplit(":name", 1)[0]
    after = rewrite(text, {ref: chosen})
    old = find_markers("f.yaml", text)[0].source
    assert_only_spans_changed(text, after, [(old, expected)])
    assert after.splitlines()[1].split(":", 1)[1].lstrip().startswith(expected)


@pytest.mark.parametrize("line,chosen", [
    (f"image: nginx:1.2 # {P % 'web'}", "1.2"),
    (f"image: nginx:1.2 # {P % 'web'}", "nginx:1.2"),
    (f"repo: ghcr.io/o/a # {P % 'web:name'}", "1.3"),  # a tag never changes a name
    (f"repo: ghcr.io/o/a # {P % 'web:name'}", "ghcr.io/o/a:1.3"),
])
def test_no_edit_when_nothing_changes(line, chosen):
    assert updates_for(find_markers("f.yaml", line), {"web": chosen}) == []


def test_locked_and_unchosen_markers_are_left_alone():
    text = ('kind: Deployment\nmetadata:\n  name: w\n  annotations: {fluxcd.io/locked: "true"}\n'
            f'x: nginx:1 # {P % "p"}\n'
            f"---\ny: nginx:1 # {P % 'q'}\n")
    assert updates_for(find_markers("f.yaml", text), {"p": "2", "other": "3"}) == []


def test_every_other_byte_stays_with_crlf_no_final_newline_and_other_setter_comments():
    text = ("# {\"$imagepolicy\": \"ns:app\"} is how you mark an image\r\n"
            "app:   \r\n"
            f"  image: ghcr.io/o/app:1.0.0   # {P % 'ns:app'}  \r\n"
            f"  tag:   '1.0.0' # {P % 'ns:app:tag'}\r\n"
            "  pinned: ghcr.io/o/app:1.0.0 # keep me\r\n"
            "  other: value\t# trailing tab comment\r\n"
            f"  side: \"ghcr.io/o/side:0.9\" # {P % 'ns:side'}")
    after = rewrite(text, {"ns:app": "ghcr.io/o/app:1.1.0", "ns:side": "0.10"})
    assert_only_spans_changed(text, after, [
        ("ghcr.io/o/app:1.0.0", "ghcr.io/o/app:1.1.0"), ("'1.0.0'", "'1.1.0'"),
        ('"ghcr.io/o/side:0.9"', '"ghcr.io/o/side:0.10"')])
    assert after.count("\r\n") == text.count("\r\n") == 6 and not after.endswith("\n")
    assert "pinned: ghcr.io/o/app:1.0.0 # keep me" in after
    # the rewritten file still has the same markers, now at the new values
    assert [m.value for m in find_markers("f.yaml", after)] == ["ghcr.io/o/app:1.1.0", "1.1.0", "ghcr.io/o/side:0.10"]


def test_v1_workload_rewrite_keeps_yaml_equal_except_the_image():
    text = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n"
            "    fluxcd.io/automated: 'true'\n    fluxcd.io/tag.app: semver:~1.2\n"
            "spec:\n  template:\n    spec:\n      containers:\n"
            "      - name: app\n        image: nginx:1.2.0 # current\n"
            "      - {name: side, image: 'busybox:1.36.0'}\n")
    found = find_markers("d.yaml", text)
    chosen = {m.policy_ref: {"app": "1.2.9", "side": "1.37.0"}[m.container] for m in found}
    after = apply_edits(text, updates_for(found, chosen))
    assert_only_spans_changed(text, after, [("nginx:1.2.0", "nginx:1.2.9"), ("'busybox:1.36.0'", "'busybox:1.37.0'")])
    before_data, after_data = yaml.safe_load(text), yaml.safe_load(after)
    containers = after_data["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == ["nginx:1.2.9", "busybox:1.37.0"]
    for c in before_data["spec"]["template"]["spec"]["containers"] + containers:
        c.pop("image")
    assert before_data == after_data


@pytest.mark.parametrize("edit,message", [
    (Edit("f.yaml", 2, 7, "nginx:1.2", "nginx:1.3"), "f.yaml:2: expected 'nginx:1.2' at column 8, found 'nginx:1.9'"),
    (Edit("f.yaml", 9, 0, "x", "y"), "f.yaml:9: line 9 is past the end of the file"),
    (Edit("f.yaml", 2, 0, "", "y"), "f.yaml:2: expected '' at column 1"),
])
def test_an_edit_that_does_not_fit_is_refused(edit, message):
    text = "a: 1\nimage: nginx:1.9\n"
    with pytest.raises(ManifestError) as info:
        apply_edits(text, [edit])
    assert str(info.value.problems[0]).startswith(message)


def test_conflicting_and_overlapping_edits_are_refused_but_duplicates_are_fine():
    text = "image: nginx:1.9\n"
    same = Edit("f.yaml", 1, 7, "nginx:1.9", "nginx:2.0")
    assert apply_edits(text, [same, same]) == "image: nginx:2.0\n"
    with pytest.raises(ManifestError, match="two different edits"):
        apply_edits(text, [same, Edit("f.yaml", 1, 7, "nginx:1.9", "nginx:2.1")])
    with pytest.raises(ManifestError, match="overlaps"):
        apply_edits(text, [same, Edit("f.yaml", 1, 13, "1.9", "2.1")])


def test_no_edits_give_the_same_text():
    text = "a: 1\r\nb: 2"
    assert apply_edits(text, []) == text


@pytest.mark.parametrize("old,new,expected", [
    ("x:1", "x:2", "x:2"),
    ('"x:1"', 'say "hi"\\', '"say \\"hi\\"\\\\"'),
    ("'x'", "it's", "'it''s'"),
    ("a", "needs: quoting", '"needs: quoting"'),
    ("a", "#x", '"#x"'),
    ("a", "null", '"null"'),
    ("a", "", '""'),
    ("a", "ends:", '"ends:"'),
    ("a", "ghcr.io/o/a@" + DIGEST, "ghcr.io/o/a@" + DIGEST),
])
def test_render_scalar(old, new, expected):
    rendered = render_scalar(old, new)
    assert rendered == expected
    assert yaml.safe_load(f"k: {rendered}")["k"] == new


def test_marker_from_another_run_checks_its_source():
    stale = Marker("f.yaml", 1, 7, "nginx:1.0", "image", "nginx:1.0", "p")
    with pytest.raises(ManifestError, match="the file changed since it was read"):
        apply_edits("image: nginx:1.5\n", updates_for([stale], {"p": "2.0"}))


def test_a_field_already_at_the_chosen_tag_keeps_its_digest():
    text = ('a: reg.example/app:1.2.0@sha256:' + "0" * 64 + ' # {"$imagepolicy": "app"}\n'
            'b: reg.example/app:1.1.0 # {"$imagepolicy": "app"}\n')
    edits = updates_for(find_markers("f.yaml", text), {"app": "1.2.0"})
    assert [e.line for e in edits] == [2]
    assert apply_edits(text, edits).splitlines()[0] == text.splitlines()[0]

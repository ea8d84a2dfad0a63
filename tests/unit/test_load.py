"""Reading files as kubectl does. The expected values are what kubectl v1.36 itself produced for the
same text (tests/integration/test_parse_differential.py checks them against the real binary)."""
import json

import pytest

from gitops.manifests.load import load_documents, select_manifest_files

HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"


def data_of(body: str) -> dict:
    docs, problems = load_documents("c.yaml", (HEAD + "data:\n" + body).encode())
    assert problems == [], problems
    return docs[0].data["data"]


def problems_of(text: str, path: str = "c.yaml") -> list[str]:
    return [str(p) for p in load_documents(path, text.encode())[1]]


def test_multi_document_yaml_keeps_lines_and_skips_empty_documents():
    text = (b"# comment\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# only a comment\n---\n"
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n---\n~\n")
    docs, problems = load_documents("a.yaml", text)
    assert problems == []
    assert [(d.data["metadata"]["name"], d.line) for d in docs] == [("a", 4), ("b", 11)]
    assert docs[1].line_of("metadata.name") == 14 and docs[1].line_of("kind") == 12


@pytest.mark.parametrize("kind", ["List", "ConfigMapList"])
def test_lists_are_expanded_with_item_lines(kind):
    text = (f"apiVersion: v1\nkind: {kind}\nitems:\n"
            "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n"
            "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n").encode()
    docs, problems = load_documents("l.yaml", text)
    assert problems == []
    assert [(d.data["metadata"]["name"], d.line) for d in docs] == [("a", 4), ("b", 7)]
    assert docs[1].line_of("metadata.name") == 9


def test_any_document_with_items_is_a_list_and_items_inherit_the_list_kind():
    # kubectl's unstructured decoder: `items` makes a list; items naming neither kind nor apiVersion
    # get the list's kind less "List", and its apiVersion.
    docs, problems = load_documents("l.yaml", b"apiVersion: v1\nkind: ConfigMapList\nitems:\n- metadata: {name: a}\n"
                                              b"---\napiVersion: x/v1\nkind: Playlist\nmetadata: {name: p}\n"
                                              b"items:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n")
    assert problems == []
    assert [(d.data["kind"], d.data["apiVersion"], d.data["metadata"]["name"]) for d in docs] == [
        ("ConfigMap", "v1", "a"), ("Secret", "v1", "s")]
    assert problems_of("apiVersion: v1\nkind: X\nmetadata: {name: p}\nitems: {}\n") == [
        "c.yaml:4: items must be a list: kubectl reads every document that has items as a List of objects"]
    # `items: null` too is a list for kubectl, an empty one: the document holds no object at all.
    assert load_documents("n.yaml", b"apiVersion: v1\nkind: X\nmetadata: {name: p}\nitems: null\n") == ([], [])


@pytest.mark.parametrize(("text", "value"), [
    ("yes", True), ("on", True), ("y", True), ("Y", True), ("n", False), ("NO", False), ("off", False),
    ("True", True), ("tRUE", "tRUE"), ("~", None), ("null", None), ("Null", None), ("", None),
    ("0755", 493), ("012", 10), ("0o17", 15), ("0x1F", 31), ("+0x1F", 31), ("0x_1F", 31), ("0b101", 5), ("-0b101", -5),
    ("08", 8), ("09", 9), ("0b2", "0b2"), ("1_000", 1000), ("1__0", 10), ("1_", 1), ("_1", "_1"),
    ("1:20", "1:20"), ("190:20:30.15", "190:20:30.15"), ("2001-12-14", "2001-12-14"),
    ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"), ("=", "="),
    ("1.5", 1.5), ("1.", 1), ("1.0e+3", 1000), ("1e3", 1000), (".5", 0.5), ("+.5", 0.5), (".5_0", 0.5),
    ("1_0.5", 10.5), ("685_230.15", 685230.15), ("0x1p3", "0x1p3"), ("1e-400", 0), ("-0.0", 0),
    ("1e20", 100000000000000000000), ("1e21", 1e21), ("1e309", "1e309"),
    ("9223372036854775807", 9223372036854775807), ("9223372036854775808", 9223372036854776000),
    ("18446744073709551615", 18446744073709552000), ("0xFFFFFFFFFFFFFFFF", 18446744073709552000),
    ("-9223372036854775809", -9223372036854776000), ("123456789012345678901234567890", 1.2345678901234568e+29),
    ("9" * 300, 1e300), ("9" * 400, "9" * 400), ("9" * 5000, "9" * 5000),
])
def test_plain_scalars_resolve_as_kubernetes_does(text, value):
    got = data_of(f"  k: {text}\n")["k"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("text", "value"), [
    ("!!binary aGVsbG8=", "hello"), ("!!binary /w==", "\ufffd"), ("!!python/object:os.system x", "x"),
    ("!foo 12", "12"), ("! 12", "12"), ("!!int \"12\"", 12), ("!!float 1", 1), ("!!str 12", "12"),
    ("!!timestamp 2001-12-14", "2001-12-14"), ("!!null \"\"", None), ("!!bool \"yes\"", True), ("!!str", ""),
    ("!!merge x", "x"), ("!!set {x, q}", {"x": None, "q": None}), ("!!omap [a: 1]", [{"a": 1}]), ("'yes'", "yes"),
    ("\"0755\"", "0755"), ("|\n    yes\n", "yes\n"),
])
def test_tags_and_quotes_resolve_as_kubernetes_does(text, value):
    assert data_of(f"  k: {text}\n")["k"] == value


@pytest.mark.parametrize(("text", "message"), [
    ("!!int abc", "cannot decode !!str `abc` as a !!int"), ("!!bool 1", "cannot decode !!int `1` as a !!bool"),
    ("!!int 1.5", "cannot decode !!float `1.5` as a !!int"), ("!!timestamp hello", "as a !!timestamp"),
    ("!!binary \"a b\"", "!!binary value contains invalid base64 data"),
    (".inf", ".inf cannot be written as JSON"), ("-.Inf", "-.inf cannot be written as JSON"),
    (".nan", ".nan cannot be written as JSON"),
])
def test_scalars_kubernetes_refuses_are_problems_at_their_line(text, message):
    found = problems_of(HEAD + f"data:\n  ok: 1\n  k: {text}\n")
    assert len(found) == 1 and found[0].startswith("c.yaml:7: ") and message in found[0], found


@pytest.mark.parametrize(("key", "expected"), [
    ("1", "1"), ("0x10", "16"), ("yes", "true"), ("n", "false"), ("1.1", "1.1"), ("0.1234567891", "0.12345679"),
    ("123456789.0", "1.2345679e+08"), ("1e6", "1e+06"), ("123456.0", "123456"), ("1e-5", "1e-05"),
    ("1e300", ".inf"), (".nan", ".nan"), ("-0.0", "-0"), ("2001-12-14", "2001-12-14"), ("!!binary aGk=", "hi"),
    ("9223372036854775807", "9223372036854775807"), ("'null'", "null"), ('"<<"', "<<"),
])
def test_keys_become_strings_as_sigs_k8s_io_yaml_makes_them(key, expected):
    assert list(data_of(f"  {key}: v\n")) == [expected]


@pytest.mark.parametrize(("key", "message"), [
    ("~", "a mapping key cannot be null"), ("null", "a mapping key cannot be null"),
    ("18446744073709551615", "cannot be an integer above 2^63"), ("[a]", "cannot be a mapping key"),
    ("{a: 1}", "cannot be a mapping key"),
])
def test_keys_kubernetes_cannot_convert_are_problems(key, message):
    found = problems_of(HEAD + f"data:\n  {key}: v\n")
    assert len(found) == 1 and found[0].startswith("c.yaml:6: ") and message in found[0], found


@pytest.mark.parametrize("body", ["  a: 1\n  a: 2\n", "  \"1\": a\n  1: b\n", "  yes: a\n  true: b\n",
                                  "  1.0: a\n  1: b\n"])
def test_duplicate_keys_are_a_problem_naming_the_key(body):
    found = problems_of(HEAD + "data:\n" + body)
    assert len(found) == 1 and found[0].startswith("c.yaml:7: duplicate key "), found


def test_merge_keys_follow_go_yaml_v2():
    got = data_of("  base: &b {x: 1, y2: 2}\n  m1:\n    x: 0\n    <<: *b\n  m2:\n    <<: *b\n    x: 9\n"
                  "  m3:\n    <<: [{x: 1}, {x: 2, z: 3}]\n  m4:\n    \"<<\": *b\n  m5:\n    <<: {a: 1, <<: {b: 2}}\n"
                  "  m6:\n    !!merge <<: {a: 1}\n")
    assert got == {"base": {"x": 1, "y2": 2}, "m1": {"x": 1, "y2": 2}, "m2": {"x": 9, "y2": 2},
                   "m3": {"x": 1, "z": 3}, "m4": {"<<": {"x": 1, "y2": 2}}, "m5": {"a": 1, "b": 2}, "m6": {"a": 1}}
    for bad in ("  a: &a x\n  m:\n    <<: *a\n", "  a: &a [1]\n  m:\n    <<: *a\n", "  m:\n    <<: [x]\n",
                "  m:\n    <<: ~\n"):
        assert any("map merge requires map or sequence of maps" in p for p in problems_of(HEAD + "data:\n" + bad))


def test_anchors_and_aliases():
    assert data_of("  x: &a 1\n  x2: &a yes\n  y: *a\n  z: &m {k: v}\n  w: *m\n")["w"] == {"k": "v"}
    assert data_of("  x: &a yes\n  *a : 2\n")["true"] == 2  # an alias as a key resolves as a key
    assert any("anchor 'a' value contains itself" in p for p in problems_of(HEAD + "data:\n  a: &a [*a]\n"))
    assert any("unknown anchor 'nope' referenced" in p for p in problems_of(HEAD + "data:\n  a: *nope\n"))


def test_document_separators_as_kubectl_splits_them():
    assert problems_of("--- {apiVersion: v1, kind: X, metadata: {name: a}}\n") == [
        "c.yaml:1: invalid document separator '--- {apiVersion: v1, kind: X, metadata: {name: a}}': kubectl refuses "
        "anything but a comment after '---'; start the document on the next line"]
    assert problems_of(HEAD + "----\n")[0].startswith("c.yaml:5: invalid document separator '----'")
    docs, problems = load_documents("c.yaml", ("--- # first\n" + HEAD + "---   \n" + HEAD).encode())
    assert problems == [] and [d.line for d in docs] == [2, 7]
    assert problems_of(HEAD + "...\n" + HEAD)[0].startswith("c.yaml:6: a second document after '...'")
    directive = problems_of("%YAML 1.1\n---\n" + HEAD)[0]  # the directive's part has no '---' left
    assert directive.startswith("c.yaml:2: invalid YAML: did not find expected <document start>")


def test_content_decides_json_or_yaml_not_the_file_name():
    assert load_documents("o.yaml", b'{"apiVersion": "v1", "kind": "X", "metadata": {"name": "j"}}')[0][0].data[
        "metadata"] == {"name": "j"}
    assert load_documents("o.json", HEAD.encode())[0][0].data["metadata"] == {"name": "a"}
    tabs = b'{\n\t"apiVersion": "v1",\n\t"kind": "X",\n\t"metadata": {"name": "j"}, "data": {"y": "\\/"}\n}'
    assert load_documents("o.json", tabs)[0][0].data["data"] == {"y": "/"}
    stream = b'{"kind": "A", "metadata": {"name": "a"}}\n{"kind": "B", "metadata": {"name": "b"}}\n'
    docs, problems = load_documents("s.json", stream)
    assert problems == [] and [(d.data["kind"], d.line) for d in docs] == [("A", 1), ("B", 2)]
    # Past two JSON values the stream is JSON for kubectl: YAML after them is an error, not a document.
    assert problems_of(stream.decode() + "---\nkind: C\n", "s.json")[0].startswith("s.json:3: invalid JSON")
    docs, problems = load_documents("s.json", b'{"kind": "A"}\n---\nkind: C\n')
    assert problems == [] and [(d.data["kind"], d.line) for d in docs] == [("A", 1), ("C", 3)]


def test_json_as_kubernetes_reads_it():
    # NaN is no JSON for Go: kubectl then reads the file as YAML, where it is a string.
    assert load_documents("o.json", b'{"kind": "X", "data": {"x": NaN}}')[0][0].data["data"] == {"x": "NaN"}
    assert load_documents("o.json", b'{"kind": "X", "data": {"x": }}')[0][0].data["data"] == {"x": None}
    docs, _ = load_documents("o.json", b'{"kind": "X", "d": {"a": 123456789012345678901234567890, "b": 1.0, '
                                       b'"c": "\\ud83d\\ude00 \\ud800", "e": 9223372036854776000}}')
    assert docs[0].data["d"] == {"a": 1.2345678901234568e+29, "b": 1, "c": "\U0001f600 \ufffd",
                                 "e": 9223372036854776000}
    assert type(docs[0].data["d"]["b"]) is int
    assert problems_of('{"kind": "X", "d": {"x": 1, "x": 2}}', "o.json") == [
        "o.json:1: duplicate key 'x' in one object: Kubernetes' strict decoding refuses it, and which value wins "
        "is undefined"]
    assert "out of range for a float64" in problems_of('{"kind": "X", "d": 1e400}', "o.json")[0]
    assert problems_of('{"kind": "A"}\n{"kind": "B"}\n{"kind": ', "o.json")[0].startswith("o.json:3: invalid JSON")


def test_encodings_as_kubectl_reads_them():
    assert load_documents("b.yaml", b"\xef\xbb\xbf" + HEAD.encode())[0][0].data["kind"] == "ConfigMap"
    assert load_documents("b.yaml", b"\xff\xfe" + HEAD.encode("utf-16-le"))[0][0].data["kind"] == "ConfigMap"
    assert load_documents("b.yaml", b"\xfe\xff" + HEAD.encode("utf-16-be"))[0][0].data["kind"] == "ConfigMap"
    crlf = load_documents("b.yaml", (HEAD + "data:\n  k: |\n    l1\n    l2\n").replace("\n", "\r\n").encode())
    assert crlf[0][0].data["data"] == {"k": "l1\nl2\n"} and crlf[1] == []
    assert problems_of("a: 1\n\tb: 2\n")[0].startswith("c.yaml:2: invalid YAML")
    assert [str(p) for p in load_documents("o.yaml", b"a: 1\nb: \xff\n")[1]] == [
        "o.yaml:2: not UTF-8 text: invalid start byte at byte 8"]


def test_invalid_yaml_names_the_line():
    docs, problems = load_documents("bad.yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n")
    assert docs == []
    assert len(problems) == 1
    assert problems[0].path == "bad.yaml" and problems[0].line >= 4
    assert str(problems[0]).startswith("bad.yaml:") and "invalid YAML" in problems[0].message


def test_every_document_is_read_on_its_own_so_every_problem_is_found():
    found = problems_of("a: [\n---\n" + HEAD + "---\nb: {\n")
    assert [p.split(":")[1] for p in found] == ["2", "9"] and all("invalid YAML" in p for p in found)


def test_values_are_plain_json():
    docs, _ = load_documents("c.yaml", (HEAD + "data:\n  a: &x {b: [1, 2.5, yes, ~, '3']}\n  c: *x\n").encode())
    assert json.loads(json.dumps(docs[0].data)) == docs[0].data


def test_file_selection_is_stable_and_skips_what_is_not_objects():
    paths = ["cfg/b.yaml", "cfg/a.yml", "cfg/sub/c.json", "cfg/notes.txt", "cfg/kustomization.yaml",
             "cfg/.github/workflows/ci.yml", "cfg/.gitopsignore", "cfg/drafts/x.yaml", "other/d.yaml",
             "cfg/z.draft.yaml"]
    chosen = select_manifest_files(paths, "cfg", "drafts/\n*.draft.yaml\n")
    assert chosen == ["cfg/a.yml", "cfg/b.yaml", "cfg/sub/c.json"]


def test_file_selection_at_the_repo_root():
    assert select_manifest_files(["b.yaml", "a/x.yaml", ".ci.yml"], ".", None) == ["a/x.yaml", "b.yaml"]

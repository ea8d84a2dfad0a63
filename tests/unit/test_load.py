import pytest

from gitops.manifests.load import load_documents, select_manifest_files


def test_multi_document_yaml_keeps_lines_and_skips_empty_documents():
    text = (b"# comment\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# only a comment\n---\n"
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n")
    docs, problems = load_documents("a.yaml", text)
    assert problems == []
    assert [(d.data["metadata"]["name"], d.line) for d in docs] == [("a", 4), ("b", 11)]
    assert docs[1].line_of("metadata.name") == 14


@pytest.mark.parametrize("kind", ["List", "ConfigMapList"])
def test_lists_are_expanded_with_item_lines(kind):
    text = (f"apiVersion: v1\nkind: {kind}\nitems:\n"
            "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n"
            "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n").encode()
    docs, problems = load_documents("l.yaml", text)
    assert problems == []
    assert [(d.data["metadata"]["name"], d.line) for d in docs] == [("a", 4), ("b", 7)]


def test_invalid_yaml_names_the_line():
    docs, problems = load_documents("bad.yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n")
    assert docs == []
    assert len(problems) == 1
    assert problems[0].path == "bad.yaml" and problems[0].line >= 4
    assert str(problems[0]).startswith("bad.yaml:") and "invalid YAML" in problems[0].message


def test_json_with_tabs_is_read():
    docs, problems = load_documents("o.json",
                                    b'{\n\t"apiVersion": "v1",\n\t"kind": "ConfigMap",\n\t"metadata": {"name": "j"}\n}')
    assert problems == [] and docs[0].data["metadata"]["name"] == "j"


def test_invalid_json_and_non_utf8_are_problems():
    assert "invalid JSON" in load_documents("o.json", b'{"a": }')[1][0].message
    assert "not UTF-8" in load_documents("o.yaml", b"\xff\xfe")[1][0].message


def test_file_selection_is_stable_and_skips_what_is_not_objects():
    paths = ["cfg/b.yaml", "cfg/a.yml", "cfg/sub/c.json", "cfg/notes.txt", "cfg/kustomization.yaml",
             "cfg/.github/workflows/ci.yml", "cfg/.gitopsignore", "cfg/drafts/x.yaml", "other/d.yaml",
             "cfg/z.draft.yaml"]
    chosen = select_manifest_files(paths, "cfg", "drafts/\n*.draft.yaml\n")
    assert chosen == ["cfg/a.yml", "cfg/b.yaml", "cfg/sub/c.json"]


def test_file_selection_at_the_repo_root():
    assert select_manifest_files(["b.yaml", "a/x.yaml", ".ci.yml"], ".", None) == ["a/x.yaml", "b.yaml"]

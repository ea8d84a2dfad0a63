"""Every file is hostile input: each case here ends in a correct parse or a clear `path:line`
problem, in bounded time, through the real child process (no built tool needed)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gitops.deep import recursion_room
from gitops.desired import desired_state_from_files
from gitops.errors import ManifestError
from gitops.manifests import isolate
from gitops.manifests.limits import MAX_DEPTH, MIB
from gitops.source.git import SourceFile

BOUND_S = 10.0  # per case, loosely: a loaded 2-core machine
LOCATED = re.compile(r"^[^:]+:\d+: \S")
HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"


def read(files: dict[str, bytes], ignore: str | None = None, **kw):
    started = time.monotonic()
    docs, problems = isolate.load_isolated(files, "", (".gitopsignore", ignore) if ignore is not None else None,
                                           **kw)
    elapsed = time.monotonic() - started
    assert elapsed < BOUND_S, f"took {elapsed:.1f} s"
    shown = [str(p) for p in problems]
    assert all(LOCATED.match(p) and p.split(":")[0] in {*files, ".gitopsignore"} for p in shown), shown
    with recursion_room(MAX_DEPTH + 100):
        for doc in docs:
            json.dumps(doc.data, allow_nan=False)  # plain JSON values, nothing else
    return docs, shown


def one_problem(files: dict[str, bytes], where: str, message: str, **kw) -> None:
    """One problem, at `where` ("path:line", or "path:" for any line), saying `message`."""
    _, problems = read(files, **kw)
    pattern = re.escape(where) + (r"\d+: " if where.endswith(":") else ": ")
    assert len(problems) == 1 and re.match(pattern, problems[0]) and message in problems[0], problems


def depth(value) -> int:
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            pending.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def nested_list(levels: int) -> str:
    """A mapping holding `levels - 1` nested flow sequences: `levels` collections deep in all."""
    return "a: " + "[" * (levels - 1) + "]" * (levels - 1) + "\n"


def laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("text", "line"), [
    ("[" * 200_000, 1),  # today: SIGSEGV in the C composer's recursion
    ("a: " + "{" * 200_000, 1),
    ("- " * 20_000 + "x\n", 1),
    (nested_list(MAX_DEPTH + 1), 1),
], ids=["brackets", "braces", "block-sequences", "one-past-the-limit"])
def test_nesting_past_kubernetes_limit_is_a_problem_at_its_line(text, line):
    one_problem({"deep.yaml": text.encode()}, f"deep.yaml:{line}", f"nested deeper than {MAX_DEPTH:,} levels")


@pytest.mark.parametrize("levels", [500, MAX_DEPTH])
def test_nesting_up_to_kubernetes_limit_is_read(levels):
    docs, problems = read({"deep.yaml": nested_list(levels).encode()})
    assert problems == [] and depth(docs[0].data) == levels


def test_deep_block_mappings_are_read():
    # Block indentation grows the file with the square of the depth: the file limit comes first.
    docs, problems = read({"deep.yaml": "".join(f"{' ' * i}k:\n" for i in range(3_000)).encode()})
    assert problems == [] and depth(docs[0].data) == 3_000


def test_deep_json_is_read_up_to_the_limit_and_refused_past_it():
    ok = '{"a": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    docs, problems = read({"deep.json": ok.encode()})
    assert problems == [] and depth(docs[0].data) == MAX_DEPTH
    one_problem({"deep.json": ('{"a": ' + "[" * 200_000).encode()}, "deep.json:1", "nested deeper than")


@pytest.mark.parametrize("text", [
    laughs(),  # today: past 60 s at 1.6 GB
    laughs() + "base: &b {" + ", ".join(f"k{i}: *l8" for i in range(9)) + "}\n",
    laughs(5) + "".join(f"m{i}: &m{i}\n  <<: [*l4, *l4]\n  n: [*m{i - 1}, *m{i - 1}, *m{i - 1}, *m{i - 1}]\n"
                        if i else "m0: &m0 {<<: *l4}\n" for i in range(12)),
], ids=["laughs", "laughs-in-a-map", "merge-keys"])
def test_alias_bombs_stop_at_go_yaml_ratio(text):
    assert len(text) < 2048
    one_problem({"bomb.yaml": text.encode()}, "bomb.yaml:", "document contains excessive aliasing")


def test_aliases_within_go_yaml_ratio_are_expanded():
    # 9^3 strings from 40 nodes: 96% of the nodes come from aliases, under go-yaml's 99%.
    docs, problems = read({"a.yaml": laughs(3, 9).encode()})
    assert problems == [] and json.dumps(docs[0].data["l2"]).count("lol") == 9**3


def test_anchor_containing_itself_and_unknown_alias():
    one_problem({"a.yaml": b"a: &a [1, *a]\n"}, "a.yaml:1", "anchor 'a' value contains itself")
    one_problem({"a.yaml": b"a: &a {b: *a}\n"}, "a.yaml:1", "anchor 'a' value contains itself")
    one_problem({"a.yaml": b"a: 1\nb: *nope\n"}, "a.yaml:2", "unknown anchor 'nope' referenced")


def test_huge_numbers_are_what_kubernetes_makes_of_them():
    digits = "9" * 5_000  # today: ValueError from Python's int conversion limit
    docs, problems = read({"n.yaml": f"a: {digits}\nb: 1{'0' * 300}\nc: -{digits}\n".encode(),
                           "n.json": f'{{"a": 1{"0" * 30}, "b": 0.{"0" * 5000}1}}'.encode()})
    assert problems == []
    assert docs[0].data == {"a": 1e30, "b": 0} and docs[1].data == {"a": digits, "b": 1e300, "c": "-" + digits}
    one_problem({"n.json": f'{{"a": {digits}}}'.encode()}, "n.json:1", "out of range for a float64")


def test_objects_past_the_api_servers_request_limit_are_refused():
    one_problem({"big.yaml": (HEAD + "data:\n  k: " + "x" * (4 * MIB) + "\n").encode()}, "big.yaml:1",
                "the object is 4.0 MiB as JSON; the API server accepts at most 3 MiB")
    docs, problems = read({"ok.yaml": (HEAD + "data:\n  k: " + "x" * (2 * MIB) + "\n").encode()})
    assert problems == [] and len(docs[0].data["data"]["k"]) == 2 * MIB


def test_long_lines_and_long_keys_are_read():
    docs, problems = read({"l.yaml": (HEAD + f"data:\n  ? {'k' * MIB}\n  : v\n  long: \"{'y' * MIB}\"\n").encode()})
    assert problems == [] and len(docs[0].data["data"]) == 2
    # YAML (and so go-yaml and libyaml alike) allows an implicit key of at most 1024 characters.
    one_problem({"l.yaml": (HEAD + f"data:\n  {'k' * 1025}: v\n").encode()}, "l.yaml:", "invalid YAML")


def test_files_and_commits_past_their_size_are_refused_before_parsing():
    one_problem({"big.yaml": b"#" * (33 * MIB)}, "big.yaml:1", "the file is 33.0 MiB; at most 32 MiB is read")
    comment = b"# " + b"x" * (30 * MIB) + b"\n"
    _, problems = read({"a.yaml": comment, "b.yaml": comment, "c.yaml": comment})
    assert problems == ["c.yaml:1: the manifests add up to more than 64 MiB with this file; it and the files after it "
                        "were not read"]


def test_too_many_documents_in_a_file_or_a_commit():
    one_problem({"m.yaml": b"\n---\n" * 100_001}, "m.yaml:", "more than 100,000 documents in one file")
    items = "apiVersion: v1\nkind: List\nitems:\n" + "- {}\n" * 100_001
    one_problem({"l.yaml": items.encode()}, "l.yaml:1", "the list has 100,001 items: more than 100,000 documents")
    files = {f"m{i}.yaml": b"\n---\n" * 70_000 for i in range(3)}
    _, problems = read(files)
    assert problems == ["m2.yaml:1: the commit has more than 200,000 documents with this file; the files after it "
                        "were not read"]


@pytest.mark.parametrize(("data", "where", "message"), [
    (b"a: 1\nb: \x00\n", "x.yaml:2", "invalid YAML"),
    (b"a: 1\nb: \xc3\x28\n", "x.yaml:2", "not UTF-8 text"),
    (b"a: 1\n\tb: 2\n", "x.yaml:2", "invalid YAML"),
    (b"a: [1, 2\n", "x.yaml:2", "invalid YAML"),
    (b"a: 1\na: 2\n", "x.yaml:2", "duplicate key 'a'"),
    (b"~: 1\n", "x.yaml:1", "a mapping key cannot be null"),
    (b"a: .inf\n", "x.yaml:1", ".inf cannot be written as JSON"),
    (b"a: !!binary '%%%'\n", "x.yaml:1", "invalid base64"),
    (b"--- a: 1\n", "x.yaml:1", "invalid document separator"),
    (bytes(range(256)) * 4, "x.yaml:", "not UTF-8 text"),
], ids=["nul", "utf8", "tab", "unclosed", "duplicate", "null-key", "inf", "binary", "separator",
        "garbage"])
def test_malformed_bytes_are_problems_at_their_line(data, where, message):
    one_problem({"x.yaml": data}, where, message)


@pytest.mark.parametrize("data", [b"", b"\n\n", b"# only\n", b"---\n---\n", b"~\n", b"\xef\xbb\xbf",
                                  b"\xff\xfe" + "a: 1\n".encode("utf-16-le")])
def test_empty_and_odd_but_valid_files(data):
    read({"e.yaml": data})


def test_a_bom_inside_a_document_is_text_as_for_kubectl():
    docs, problems = read({"b.yaml": b"a: x\xef\xbb\xbfy\n---\n\xef\xbb\xbfb: 1\n"})
    assert problems == [] and [d.data for d in docs] == [{"a": "x\ufeffy"}, {"b": 1}]


def test_python_tags_are_only_text(tmp_path):
    marker = tmp_path / "pwned"
    text = (f"a: !!python/object/apply:os.system ['touch {marker}']\n"
            f"b: !!python/object/new:os.system ['touch {marker}']\n"
            "c: !!python/name:os.system ''\nd: !!binary aGVsbG8=\ne: !custom {x: 1}\n")
    docs, problems = read({"t.yaml": text.encode()})
    assert problems == [] and not marker.exists()
    assert docs[0].data == {"a": [f"touch {marker}"], "b": [f"touch {marker}"], "c": "", "d": "hello",
                            "e": {"x": 1}}


def test_merge_keys_in_bulk_are_read():
    text = "base: &b {" + ", ".join(f"k{i}: {i}" for i in range(200)) + "}\n"
    text += "".join(f"m{i}:\n  <<: *b\n  own: {i}\n" for i in range(300))
    docs, problems = read({"m.yaml": text.encode()})
    assert problems == [] and docs[0].data["m299"]["k199"] == 199 and docs[0].data["m299"]["own"] == 299


def test_a_backtracking_ignore_pattern_is_a_problem_of_that_line(monkeypatch):
    monkeypatch.setattr(isolate, "IGNORE_TIMEOUT_S", 2.0)
    files = {f"{'a' * 60}{i}.yaml": HEAD.encode() for i in range(20)}
    _, problems = read(files, ignore="*.txt\n" + "*a" * 14 + "*b\n")
    assert len(problems) == 1 and problems[0].startswith(".gitopsignore:2: matching these patterns took longer than "
                                                         "2 s"), problems


def test_ignore_patterns_are_matched_in_the_child():
    docs, problems = read({"keep.yaml": HEAD.encode(), "drafts/x.yaml": b"[" * 100, "y.draft.yaml": b"{"},
                          ignore="drafts/\n*.draft.yaml\n")
    assert problems == [] and [d.path for d in docs] == ["keep.yaml"]


# -- what happens when the child itself fails --------------------------------------------------

FAKE_CHILD = textwrap.dedent("""
    import json, os, signal, sys, time
    how = sys.argv[1]
    header = json.loads(sys.stdin.readline())
    sys.stdout.write(json.dumps(["selected", list(range(len(header["paths"])))]) + "\\n"); sys.stdout.flush()
    sizes = json.loads(sys.stdin.readline())
    for index, size in sizes:
        sys.stdin.buffer.read(size)
    sys.stdout.write(json.dumps(["file", 0]) + "\\n")
    sys.stdout.write(json.dumps(["docs", [[1, {}, {"kind": "A"}]]]) + "\\n")
    sys.stdout.write(json.dumps(["file", 1]) + "\\n"); sys.stdout.flush()
    if how == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif how == "hang":
        time.sleep(60)
    elif how == "garbage":
        sys.stdout.write("hello\\n"); sys.stdout.flush(); time.sleep(60)
    elif how == "exit":
        sys.stderr.write("Traceback: boom\\n"); sys.exit(3)
    elif how == "memory":
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (300 * 2**20, 300 * 2**20))
        block = bytearray(2**30)
    elif how == "cpu":
        import resource
        resource.setrlimit(resource.RLIMIT_CPU, (1, 2))
        while True:
            pass
""")


def fake(how: str) -> list[str]:
    return [sys.executable, "-c", FAKE_CHILD, how]


@pytest.mark.parametrize(("how", "message"), [
    ("segv", "the parser process was ended by SIGSEGV"),
    ("memory", "exited (1) before it was done: MemoryError"),
    ("cpu", "the parser process was ended by SIGXCPU"),
    ("exit", "exited (3) before it was done: Traceback: boom"),
    ("garbage", "the parser sent something that is not JSON"),
], ids=["segv", "memory", "cpu", "exit", "garbage"])
def test_a_dying_child_is_a_problem_of_the_file_it_was_on(how, message):
    docs, problems = read({"a.yaml": b"x", "b.yaml": b"y", "c.yaml": b"z"}, command=fake(how))
    assert [d.data for d in docs] == [{"kind": "A"}]
    assert len(problems) == 1 and problems[0].startswith("b.yaml:1: reading this file failed: ") \
        and message in problems[0] and "the files after it were not read" in problems[0], problems


def test_a_hanging_child_is_stopped_at_the_deadline(monkeypatch):
    monkeypatch.setattr(isolate, "parse_timeout_s", lambda size: 1.0)
    _, problems = read({"a.yaml": b"x", "b.yaml": b"y"}, command=fake("hang"))
    assert problems == ["b.yaml:1: reading this file took too long and was stopped, so nothing was applied; the "
                        "files after it were not read"]


def test_a_child_that_cannot_start_is_a_problem():
    _, problems = read({"a.yaml": b"x"}, command=["/nonexistent/python"])
    assert len(problems) == 1 and problems[0].startswith("a.yaml:1: the manifests were not read: the parser process "
                                                         "could not start")


def test_the_child_limits_itself_before_it_reads_anything():
    with subprocess.Popen(isolate.child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE) as process:
        assert process.stdin and process.stdout
        header = {"cpu": 123.0, "folder": "", "ignore": None, "paths": ["a.yaml"]}
        process.stdin.write(json.dumps(header).encode() + b"\n")
        process.stdin.flush()
        assert json.loads(process.stdout.readline()) == ["selected", [0]]
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        process.kill()
    rows = {line[:26].strip(): line[26:].split() for line in limits.splitlines()[1:]}
    soft, hard = (int(v) for v in rows["Max cpu time"][:2])
    assert 123 <= soft <= 125 and hard == soft + 5  # the budget, from what the child had used to start
    assert rows["Max address space"][:2] == [str(4096 * MIB)] * 2
    assert rows["Max core file size"][:2] == ["0", "0"]


def test_the_commit_is_read_by_one_child_and_wired_into_the_desired_state():
    files = [SourceFile(f"apps/f{i}.yaml", f"{HEAD.replace('name: c', f'name: c{i}')}".encode()) for i in range(50)]
    files.append(SourceFile("apps/bad.yaml", b"[" * 50_000))
    files.append(SourceFile("apps/dup.yaml", (HEAD + "data:\n  k: 1\n  k: 2\n").encode()))
    files.append(SourceFile("apps/.gitopsignore", b"skipped.yaml\n"))
    files.append(SourceFile("apps/skipped.yaml", b"{"))
    started = time.monotonic()
    with pytest.raises(ManifestError) as info:
        desired_state_from_files(files, repo="r", commit="c" * 40, path="apps", namespace="n")
    assert time.monotonic() - started < BOUND_S
    assert [str(p) for p in info.value.problems] == [
        "apps/bad.yaml:1: nested deeper than 10,000 levels: Kubernetes' JSON decoding refuses it (exceeded max depth)",
        "apps/dup.yaml:7: duplicate key 'k' in one mapping: Kubernetes' strict decoding refuses it, and which value "
        "wins is undefined"]
    state = desired_state_from_files(files[:50], repo="r", commit="c" * 40, path="apps", namespace="n")
    assert len(state.manifests) == 50 and state.manifests[0].origin.line == 1


def test_no_child_is_left_behind(monkeypatch):
    monkeypatch.setattr(isolate, "parse_timeout_s", lambda size: 0.5)
    before = _children()
    for how in ("segv", "hang", "garbage", "exit"):
        isolate.load_isolated({"a.yaml": b"x", "b.yaml": b"y"}, "", None, command=fake(how))
    read({"a.yaml": HEAD.encode()})
    spare = {isolate._spare.process.pid} if isolate._spare else set()  # started for the next commit, on purpose
    assert _children() - spare <= before


def _children() -> set[int]:
    me = os.getpid()
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            found.add(int(stat.parent.name))
    return found

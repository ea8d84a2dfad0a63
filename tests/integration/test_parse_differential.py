"""gitops reads a manifest as kubectl and the API server do (issue 11): the same files through
gitops' loader and through the real kubectl (and API server) give the same JSON, or both refuse.

`kubectl label --local -f FILE` decodes a file exactly as `kubectl apply -f` does (cli-runtime's
StreamVisitor, sigs.k8s.io/yaml, the unstructured JSON decoder) for any kind and with no cluster;
its output, less the label it adds, is kubectl's reading of the file.
"""
from __future__ import annotations

import base64
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml

from gitops.deep import recursion_room
from gitops.manifests.limits import MAX_DEPTH
from gitops.manifests.load import load_documents

pytestmark = pytest.mark.integration

LABEL = "gitops-differential"


@pytest.fixture(scope="module")
def kubectl(tools) -> str:
    return str(tools["kubectl"].path)


def kubectl_reads(kubectl: str, text: bytes, suffix: str = ".yaml") -> list | str:
    """kubectl's objects for a file, or its error."""
    with tempfile.NamedTemporaryFile(suffix=suffix) as f:
        f.write(text)
        f.flush()
        result = subprocess.run([kubectl, "label", "--local", "-f", f.name, f"{LABEL}=1", "-o", "json",
                                 "--kubeconfig", "/dev/null"], capture_output=True, timeout=120)
    if result.returncode != 0:
        return result.stderr.decode(errors="replace").strip()
    out, objects, decoder, position = result.stdout.decode(), [], json.JSONDecoder(), 0
    with recursion_room(MAX_DEPTH + 100):
        while position < len(out.rstrip()):
            value, position = decoder.raw_decode(out, position)
            while position < len(out) and out[position].isspace():
                position += 1
            objects.extend(value["items"] if value.get("kind") == "List" and "items" in value else [value])
    for obj in objects:
        labels = obj["metadata"]["labels"]
        del labels[LABEL]
        if not labels:
            del obj["metadata"]["labels"]
    return objects


def gitops_reads(text: bytes, path: str = "f.yaml") -> list | str:
    """gitops' documents, or its problems; a document that is no mapping counts as refused, as
    validation (past loading) refuses it."""
    docs, problems = load_documents(path, text)
    if not problems and any(not isinstance(d.data, dict) for d in docs):
        return "a document is not a mapping"
    return "; ".join(str(p) for p in problems) if problems else [d.data for d in docs]


def same(a: object, b: object) -> bool:
    """Equal as JSON, integers and floats told apart as JSON tells them."""
    with recursion_room(MAX_DEPTH + 100):
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def agree(kubectl: str, text: bytes, suffix: str = ".yaml") -> tuple[list | str, list | str]:
    ours, theirs = gitops_reads(text, "f" + suffix), kubectl_reads(kubectl, text, suffix)
    if isinstance(theirs, str) or isinstance(ours, str):
        assert isinstance(theirs, str) and isinstance(ours, str), f"{text[:300]!r}\ngitops: {ours}\nkubectl: {theirs}"
    else:
        if not same(ours, theirs):
            with recursion_room(MAX_DEPTH + 100):
                pytest.fail(f"{text[:300]!r}\ngitops:  {json.dumps(ours)[:2000]}\nkubectl: {json.dumps(theirs)[:2000]}")
    return ours, theirs


def numbered(cases: list) -> list:
    return [pytest.param(*(case if isinstance(case, tuple) else (case,)), id=str(i)) for i, case in enumerate(cases)]


def obj(body: str, kind: str = "X", name: str = "a") -> str:
    return f"apiVersion: example.com/v1\nkind: {kind}\nmetadata:\n  name: {name}\n{body}"


# -- scalars and keys: a generated corpus ---------------------------------------------------------

WORDS = ["y", "Y", "yes", "Yes", "YES", "yEs", "n", "N", "no", "NO", "true", "True", "TRUE", "tRue", "false", "on",
         "On", "ON", "off", "OFF", "oN", "~", "null", "Null", "NULL", "nULL", "", "=", "<<", ".nan", ".NaN", ".inf",
         "-.Inf", "+.INF", ".Inf", "inf", "nan", "NaN", "Infinity", "0x", "0b", "0o", "_", ".", "-", "+", "1:20",
         "190:20:30.15", "-1:20", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10",
         "2001-13-14", "2001-2-30", "1_2:30", "0755", "08", "09.5", "00", "-0", "+0", "0.", "-0.0", "1e", "1e+",
         "1E5", "1.5e-3", ".5e1", "._5", ".5_", "1__0", "0x1p3", "0X1F", "0B11", "0O17", "0x_F", "0b_1", "1_000_000",
         "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
         "18446744073709551615", "18446744073709551616", "0xFFFFFFFFFFFFFFFF", "0x10000000000000000",
         "0777777777777777777777", "01777777777777777777777", "1e20", "1e21", "123456789012345678901",
         "1e308", "1e309", "-1e309", "1e-320", "1e-400", "4.9e-324", "0.1", "0.30000000000000004", "123.456e7",
         "1.7976931348623157e308", "6.02214076e23", "9" * 25, "9" * 320, "1" + "0" * 400, "-" + "9" * 400]


def generated_numbers(count: int = 250) -> list[str]:
    rng = random.Random(11)
    parts = [["", "+", "-"], ["", "0", "0x", "0o", "0b", "00"], ["1", "7", "9", "12", "0", "fF", "101", "8"],
             ["", "_", "__"], ["", "0", "5", "99"], ["", ".", ".5", "._5", ".0_1"], ["", "e3", "E-3", "e+400", "e_1"],
             ["", "_"]]
    return sorted({"".join(rng.choice(p) for p in parts) for _ in range(count)})


CORPUS = sorted(set(WORDS + generated_numbers()))


def test_scalar_values_resolve_as_in_kubectl(kubectl):
    """Values kubectl accepts: one object holds them all, each under a quoted key."""
    accepted = [s for s in CORPUS if not isinstance(gitops_reads(obj(f"data:\n  v: {s}\n").encode()), str)]
    assert len(accepted) > 200
    body = "data:\n" + "".join(f"  \"k{i:03d}\": {s}\n" for i, s in enumerate(accepted))
    ours, _ = agree(kubectl, obj(body).encode())
    values = ours[0]["data"]
    assert values[f"k{accepted.index('yes'):03d}"] is True and values[f"k{accepted.index('='):03d}"] == "="


def test_scalar_values_kubectl_refuses_are_refused(kubectl):
    refused = [s for s in CORPUS if isinstance(gitops_reads(obj(f"data:\n  v: {s}\n").encode()), str)]
    assert {".inf", ".nan", "-.Inf"} <= set(refused)
    for s in refused:
        agree(kubectl, obj(f"data:\n  v: {s}\n").encode())


def test_keys_become_the_strings_kubectl_makes(kubectl):
    """Each key alone in its own mapping, so none collides with another."""
    keys = [s for s in CORPUS if s not in ("", "<<")]
    accepted = [s for s in keys if not isinstance(gitops_reads(obj(f"data:\n  m:\n    {s}: v\n").encode()), str)]
    body = "data:\n" + "".join(f"  \"k{i:03d}\":\n    {s}: v\n" for i, s in enumerate(accepted))
    ours, _ = agree(kubectl, obj(body).encode())
    assert ours[0]["data"][f"k{accepted.index('yes'):03d}"] == {"true": "v"}
    assert ours[0]["data"][f"k{accepted.index('0X1F'):03d}"] == {"31": "v"}
    for s in (s for s in keys if s not in accepted):
        agree(kubectl, obj(f"data:\n  m:\n    {s}: v\n").encode())


@pytest.mark.parametrize("body", numbered([
    "data:\n  a: !!binary aGVsbG8=\n  b: !!python/object:os.system x\n  c: !foo 12\n  d: !!int \"12\"\n"
    "  e: !!float 1\n  f: !!str 12\n  g: ! 12\n  h: !!timestamp 2001-12-14\n  i: !!set {x, q}\n  j: !!binary /w==\n"
    "  k: !!omap [a: 1]\n  l: !!null \"\"\n  m: !!bool \"yes\"\n  n2: !!str\n  o: !!merge x\n  p: !!binary 4pyTIMOg\n",
    "data:\n  a: !!int abc\n", "data:\n  a: !!bool 1\n", "data:\n  a: !!int 1.5\n", "data:\n  a: !!timestamp hello\n",
    "data:\n  a: !!binary \"a b\"\n", "data:\n  a: !!float 18446744073709551615\n",
    "data:\n  a: !!int 18446744073709551615\n", "data:\n  ~: 1\n", "data:\n  18446744073709551615: 1\n",
    "data:\n  [a]: 1\n", "data:\n  {a: 1}: 1\n", "data:\n  ? - a\n  : 1\n",
    "data:\n  base: &b {x: 1, y2: 2}\n  m1:\n    x: 0\n    <<: *b\n  m2:\n    <<: *b\n    x: 9\n"
    "  m3:\n    <<: [{x: 1}, {x: 2, z: 3}]\n  m4:\n    \"<<\": *b\n  m5:\n    <<: {a: 1, <<: {b: 2}}\n"
    "  m6:\n    !!merge <<: {a: 1}\n  m7:\n    ? !!merge q\n    : {b: 1}\n  m8: &m8\n    <<: [*b, {x: 5}]\n",
    "data:\n  a: &a x\n  m:\n    <<: *a\n", "data:\n  a: &a [1]\n  m:\n    <<: *a\n", "data:\n  m:\n    <<: [x]\n",
    "data:\n  m:\n    <<: ~\n", "data:\n  a: &a [*a]\n", "data:\n  a: *nope\n",
    "data:\n  x: &a 1\n  x2: &a yes\n  yy: *a\n  *a : z\n",
    "data:\n  long: \"" + "x" * 5000 + "\"\n  ? " + "k" * 2000 + "\n  : v\n",
    "data:\n  " + "k" * 1025 + ": v\n",
    "data:\n  q: \"\\u00e9\\t\\x41\\N\\_\\L\\P\\0\\e\"\n  s: 'it''s'\n"
    "  f: >-\n    a\n    b\n\n    c\n  l: |+\n    x\n\n",
    "data:\n  nel: \"a\u0085b\"\n  ls: \"a\u2028b\"\n  bom: x\ufeffy\n",
]))
def test_tags_keys_merges_and_anchors_as_in_kubectl(kubectl, body):
    agree(kubectl, obj(body).encode())


@pytest.mark.parametrize("text", numbered([
    obj("data:\n  a: 1\n") + "---\n" + obj("", name="b") + "---\n~\n---\n# c\n---\n---\n",
    "--- # c\n" + obj("") + "---   \n" + obj("", name="b"),
    "--- " + obj(""),
    "--- {apiVersion: v1, kind: X, metadata: {name: a}}\n",
    obj("") + "----\n",
    obj("") + "...\n",
    "%YAML 1.1\n---\n" + obj(""),
    obj("data:\n  k: |\n    l1\n    l2\n").replace("\n", "\r\n"),
    "\ufeff" + obj(""),
    obj("") + "---\n\ufeff" + obj("", name="b"),
    obj("") + "\tx: 1\n",
    "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: X\n  metadata: {name: a}\n"
    "- apiVersion: v1\n  kind: X\n  metadata: {name: b}\n",
    "apiVersion: v1\nkind: XList\nitems:\n- metadata: {name: a}\n  data: {k: v}\n",
    obj("items:\n- apiVersion: v1\n  kind: X\n  metadata: {name: song}\n", kind="Playlist"),
    obj("items: {}\n"),
    obj("items: null\n"),
    obj("data: {a: 1, a: 2}\n"),
]))
def test_files_split_into_the_same_documents_as_kubectl(kubectl, text):
    """Where kubectl reads a document in a way gitops refuses (last-wins duplicates, content after
    '...'), gitops says so: those are the asserted exceptions."""
    ours, theirs = gitops_reads(text.encode()), kubectl_reads(kubectl, text.encode())
    if isinstance(ours, str) and ("duplicate key" in ours or "a second document after '...'" in ours):
        assert not isinstance(theirs, str), theirs  # kubectl silently keeps one: refusing is the safe side
        return
    agree(kubectl, text.encode())


@pytest.mark.parametrize(("text", "suffix"), numbered([
    ('{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}, "data": {"x": NaN, "y": 1.0, "z": 1e20}}', ".json"),
    ('{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}, "data": {"x": }}', ".json"),
    ('{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}, "data": {"x": 123456789012345678901234567890,'
     ' "y": 9223372036854775808, "z": -9223372036854775808, "s": "\\ud83d\\ude00 \\ud800 \\/"}}', ".json"),
    ('{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}, "data": {"x": 1e400}}', ".json"),
    ('{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}}\n{"apiVersion": "v1", "kind": "X", '
     '"metadata": {"name": "b"}}\n', ".json"),
    ('{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}}\n---\n' + obj("", name="b"), ".yaml"),
    ('{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}}\n{"apiVersion": "v1", "kind": "X", '
     '"metadata": {"name": "b"}}\n---\n' + obj("", name="c"), ".json"),
    ('{\n\t"apiVersion": "v1",\n\t"kind": "X",\n\t"metadata": {"name": "a"}\n}', ".json"),
    ("{apiVersion: v1, kind: X, metadata: {name: a}, data: {x: yes}}", ".yaml"),
    (obj("data: {x: 1}\n"), ".json"),
    ('{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}} xx', ".json"),
    ('{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}}\nxx\n', ".json"),
    ('{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}}  ab', ".json"),
    ('{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}}\n  \n---\n' + obj("", name="b"), ".json"),
]))
def test_json_and_the_switch_to_yaml_as_in_kubectl(kubectl, text, suffix):
    agree(kubectl, text.encode(), suffix)


def test_utf16_files_are_read_as_kubectl_reads_them(kubectl):
    text = obj("data:\n  k: \u00e9\n")
    for data in (b"\xff\xfe" + text.encode("utf-16-le"), b"\xfe\xff" + text.encode("utf-16-be")):
        ours = gitops_reads(data)
        theirs = kubectl_reads(kubectl, data)
        assert not isinstance(ours, str) and same(ours, theirs)


# -- the limits where Kubernetes has them ---------------------------------------------------------

@pytest.mark.parametrize("levels", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 50])
def test_nesting_is_accepted_exactly_as_deep_as_kubectl_accepts(kubectl, levels):
    inner = levels - 1  # the object itself is one level
    agree(kubectl, obj("data: " + "[" * inner + "]" * inner + "\n").encode())
    agree(kubectl, ('{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}, "data": '
                    + "[" * inner + "]" * inner + "}").encode(), ".json")


def laughs(levels: int, width: int, extra_real: int = 0) -> str:
    lines = ["data:", "  pad: [" + ", ".join(["r"] * extra_real) + "]",
             "  l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return obj("\n".join(lines) + "\n")


@pytest.mark.parametrize(("levels", "width", "extra"), [
    (3, 9, 0), (4, 9, 0), (4, 9, 30), (4, 9, 60), (4, 10, 60), (5, 10, 5_000), (5, 10, 4_000), (6, 10, 40_000),
    (6, 10, 10_000), (7, 10, 300_000), (6, 8, 100_000),
])
def test_alias_expansion_stops_where_kubectl_stops(kubectl, levels, width, extra):
    agree(kubectl, laughs(levels, width, extra).encode())


@pytest.mark.parametrize(("levels", "width", "last_refused"), [
    (6, 8, 3_816),  # under 400,000 decoded nodes: 99% may come from aliases
    (6, 9, 103_147),  # some 850,000: the allowed share has fallen to 78%
])
def test_alias_expansion_limit_is_go_yamls_to_the_node(kubectl, levels, width, last_refused):
    refused, accepted = (agree(kubectl, laughs(levels, width, extra).encode())[0]
                         for extra in (last_refused, last_refused + 1))
    assert isinstance(refused, str) and "excessive aliasing" in refused and isinstance(accepted, list)


# -- what the API server itself makes of a manifest ----------------------------------------------

def test_the_api_server_stores_configmaps_as_gitops_reads_them(kubectl, project):
    """String-valued data, labels and annotations, from keys and values of every kind; the values
    gitops reads as non-strings are refused by kubectl as a ConfigMap cannot hold them."""
    strings = [s for s in CORPUS if isinstance(gitops_reads(obj(f"data:\n  v: {s}\n").encode()), list)
               and isinstance(gitops_reads(obj(f"data:\n  v: {s}\n").encode())[0]["data"]["v"], str)]
    body = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: differential\n  namespace: default\n"
            "  labels:\n    yes: \"on\"\n    a.b/c: 1_0-x\n  annotations:\n    08: 1:20\n    y: 2001-12-14\n"
            "    0x1F: \"=\"\n    1.5: =\n"
            "data:\n" + "".join(f"  \"k{i:03d}\": {s}\n" for i, s in enumerate(strings)) + "  n: !!str 0755\n")
    ours = gitops_reads(body.encode())
    assert isinstance(ours, list)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(body)
        f.flush()
        out = subprocess.run([kubectl, "--kubeconfig", str(project.kubeconfig), "create", "--dry-run=server", "-o",
                              "json", "-f", f.name], capture_output=True, text=True, timeout=120, check=True).stdout
    stored = json.loads(out)
    assert stored["metadata"]["labels"] == ours[0]["metadata"]["labels"] == {"true": "on", "a.b/c": "1_0-x"}
    assert stored["metadata"]["annotations"] == ours[0]["metadata"]["annotations"]
    assert stored["data"] == ours[0]["data"]
    for bad in ("yes", "0755", "1.5"):
        text = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\ndata:\n  k: {bad}\n"
        assert not isinstance(gitops_reads(text.encode())[0]["data"]["k"], str)
        result = subprocess.run([kubectl, "--kubeconfig", str(project.kubeconfig), "create", "--dry-run=server",
                                 "-f", "-"], input=text, capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and "cannot unmarshal" in result.stderr, result.stderr


def _api(project) -> tuple[str, requests.Session]:
    config = yaml.safe_load(Path(project.kubeconfig).read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    folder = Path(tempfile.mkdtemp())
    for name, field in (("ca", cluster["certificate-authority-data"]), ("cert", user["client-certificate-data"]),
                        ("key", user["client-key-data"])):
        (folder / name).write_bytes(base64.b64decode(field))
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace the cluster's own CA
    session.verify, session.cert = str(folder / "ca"), (str(folder / "cert"), str(folder / "key"))
    return cluster["server"], session


def test_the_api_servers_strict_decoding_refuses_duplicate_keys_as_gitops_does(project):
    """The evidence for refusing duplicates: sent as YAML with strict field validation, the API
    server itself refuses a mapping that names a key twice (kubectl would send its JSON, where the
    last one silently won)."""
    server, session = _api(project)
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\ndata:\n  k: a\n  k: b\n"
    assert "duplicate key 'k'" in gitops_reads(text.encode())
    url = f"{server}/api/v1/namespaces/default/configmaps?dryRun=All&fieldValidation=Strict"
    response = session.post(url, data=text, headers={"Content-Type": "application/yaml"}, timeout=30)
    assert response.status_code == 400 and 'key "k" already set in map' in response.text.replace("\\", ""), \
        response.text
    response = session.post(url.replace("Strict", "Ignore"), data=text.replace("dup", "dup2"),
                            headers={"Content-Type": "application/yaml"}, timeout=30)
    assert response.status_code == 201 and response.json()["data"] == {"k": "b"}  # lenient: silently the last


def test_the_api_server_accepts_json_as_deep_as_gitops_does(project):
    server, session = _api(project)
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "deeps.differential.gitops.dev"},
           "spec": {"group": "differential.gitops.dev", "scope": "Namespaced",
                    "names": {"plural": "deeps", "singular": "deep", "kind": "Deep", "listKind": "DeepList"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    response = session.post(f"{server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd, timeout=30)
    assert response.status_code in (201, 409), response.text
    for _ in range(60):
        if session.get(f"{server}/apis/differential.gitops.dev/v1", timeout=30).status_code == 200:
            break
        time.sleep(1)
    url = f"{server}/apis/differential.gitops.dev/v1/namespaces/default/deeps?dryRun=All"
    for levels, accepted in ((200, True), (MAX_DEPTH + 10, False)):
        inner = levels - 1  # the object itself is one level
        text = ('{"apiVersion": "differential.gitops.dev/v1", "kind": "Deep", "metadata": {"name": "d"}, "spec": '
                + "[" * inner + "]" * inner + "}")
        ours = gitops_reads(text.encode(), "d.json")
        assert isinstance(ours, list) == accepted, ours
        response = session.post(url, data=text, headers={"Content-Type": "application/json"}, timeout=60)
        assert (response.status_code == 201) == accepted, response.text[:500]

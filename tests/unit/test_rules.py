"""Kubernetes' rules, one at a time: valid and invalid values, at the boundaries of each limit."""
import json
import time

import pytest

from gitops.manifests import rules
from gitops.manifests.rules import Kinds

A63, A64, A253, A254 = "a" * 63, "a" * 64, "a" * 253, "a" * 254
SUB253 = ".".join(["a" * 63] * 3 + ["a" * 61])  # 253 characters of dot-separated labels


def ok(problem):
    return problem is None


@pytest.mark.parametrize("value,valid", [
    ("a", True), ("0", True), ("a-b", True), ("1a", True), ("a1", True), ("a--b", True), (A63, True),
    (A64, False), ("", False), ("A", False), ("aB", False), ("a_b", False), ("-a", False), ("a-", False),
    ("a.b", False), ("a b", False), ("a\n", False), ("\na", False), ("é", False), ("a\x00", False),
])
def test_dns1123_label(value, valid):
    assert ok(rules.dns1123_label(value)) is valid


@pytest.mark.parametrize("value,valid", [
    ("a", True), ("a.b", True), ("a-b.c-d", True), ("1.2.3", True), (A253, True), (SUB253, True),
    (A64, True),  # Kubernetes limits a subdomain's length, not its labels'
    (A254, False), (SUB253 + "a", False), ("", False), ("a..b", False), (".a", False), ("a.", False),
    ("A.b", False), ("a_b", False), ("-a.b", False), ("a.-b", False), ("a\n", False), ("a/b", False),
])
def test_dns1123_subdomain(value, valid):
    assert ok(rules.dns1123_subdomain(value)) is valid


@pytest.mark.parametrize("value,valid", [
    ("system:aggregate-to-admin", True), ("Admin", True), ("a b", True), ("..a", True), ("a.", True),
    (".", False), ("..", False), ("a/b", False), ("a%b", False), ("/", False),
])
def test_path_segment_name(value, valid):
    assert ok(rules.path_segment_name(value)) is valid


@pytest.mark.parametrize("key,valid", [
    ("app", True), ("App_1.x", True), ("app.kubernetes.io/name", True), (A63, True), ("example.com/" + A63, True),
    (A253 + "/a", True), ("a", True), ("1", True),
    (A64, False), ("example.com/" + A64, False), (A254 + "/a", False), ("", False), ("/a", False), ("a/", False),
    ("a/b/c", False), ("-a", False), ("a-", False), ("_a", False), ("Example.com/a", False), ("a_b.com/c", False),
    ("a\n", False), ("a b", False), ("é", False),
])
def test_qualified_name_is_a_label_key(key, valid):
    assert ok(rules.qualified_name(key)) is valid


@pytest.mark.parametrize("key,valid", [
    ("Example.COM/Key", True), ("kubectl.kubernetes.io/last-applied-configuration", True), (A63, True),
    (A64, False), ("a/b/c", False), ("-x", False), ("x\ny", False),
])
def test_annotation_keys_are_label_keys_in_any_case(key, valid):
    assert ok(rules.annotation_key(key)) is valid


@pytest.mark.parametrize("value,valid", [
    ("", True), ("a", True), (A63, True), ("A.b_c-d", True), ("1.0", True),
    (A64, False), ("a-", False), ("-a", False), ("a b", False), ("a\n", False), ("a/b", False), ("é", False),
])
def test_label_value(value, valid):
    assert ok(rules.label_value(value)) is valid


@pytest.mark.parametrize("key,valid", [
    ("tls.crt", True), (".env", True), ("A_b-c.d", True), (A253, True), ("a..b", True),
    (A254, False), ("", False), (".", False), ("..", False), ("..a", False), ("a/b", False), ("a b", False),
    ("a\n", False), ("é", False),
])
def test_config_key(key, valid):
    assert ok(rules.config_key(key)) is valid


@pytest.mark.parametrize("text,valid", [
    ("aGk=", True), ("", True), ("aGVsbG8gd29ybGQ=", True), ("aGk=\n", True), ("aG\nk=", True), ("aGk=\r\n", True),
    ("aGl=", True),  # Go's decoder ignores trailing bits, as Python's does
    ("aGk", False), ("aGk==", False), ("a Gk=", False), ("aGk=aGk=", False), ("=", False), ("é===", False),
    ("aGk-", False), ("hunter2", False),
])
def test_base64_value_as_go_decodes_bytes(text, valid):
    problem = rules.base64_value(text)
    assert ok(problem) is valid
    if problem:
        assert text not in problem or not text  # a Secret's value is never shown


@pytest.mark.parametrize("text,length", [("", 0), ("aGk=", 2), ("aGVsbG8=", 5), ("aGVs\nbG8=", 5), ("YWJj", 3)])
def test_base64_decoded_length(text, length):
    assert rules.base64_decoded_length(text) == length


@pytest.mark.parametrize("text,group,version,problem", [
    ("v1", "", "v1", None),
    ("apps/v1", "apps", "v1", None),
    ("example.com/v1alpha1", "example.com", "v1alpha1", None),
    ("cert-manager.io/v1", "cert-manager.io", "v1", None),
    ("core/v1", "", "v1", "the core group is written without a group; write v1"),
    ("Core/V1", "", "V1", "write v1"),
    ("a/b/v1", "a/b", "v1", "malformed apiVersion 'a/b/v1'"),
    ("/v1", "", "v1", "malformed apiVersion '/v1'"),
    ("apps/", "apps", "", "malformed apiVersion 'apps/'"),
    ("v2", "", "v2", "the core group has only v1"),
    ("v1beta1", "", "v1beta1", "the core group has only v1"),
    ("Apps/v1", "apps", "v1", "the group must be a DNS-1123 subdomain"),
    ("Apps/v1", "apps", "v1", "write apps/v1"),
    ("apps/V1", "apps", "V1", "write apps/v1"),
    ("example_com/v1", "example_com", "v1", "the group must be"),
    ("v1 ", "", "v1 ", "the version must be"),
    ("v1\n", "", "v1\n", "the version must be"),
    ("1/v1", "1", "v1", None),
    ("a" * 254 + "/v1", "a" * 254, "v1", "the group must be at most 253 characters (it has 254)"),
    ("x/" + "v" * 64, "x", "v" * 64, "the version must be at most 63 characters"),
])
def test_api_version(text, group, version, problem):
    parsed = rules.api_version(text)
    assert (parsed.group, parsed.version) == (group, version)
    if problem is None:
        assert parsed.problem is None
    else:
        assert problem in parsed.problem


def test_api_version_hint_is_only_given_when_it_is_right():
    assert "write" not in rules.api_version("example_com/v1").problem
    assert "write" not in rules.api_version("v1 ").problem


@pytest.mark.parametrize("kind,valid", [
    ("Deployment", True), ("My-Kind_2", True), ("a", True), ("X" * 100, True),
    ("1Kind", False), ("Kind\n", False), ("Kind Name", False), ("a.b", False), ("-a", False), ("Kind/x", False),
])
def test_kind_syntax(kind, valid):
    assert ok(rules.kind_syntax(kind)) is valid


WIDGET = ("example.com", "Widget")


@pytest.mark.parametrize("group,kind,custom,expected", [
    ("", "Secret", (), None),
    ("", "secret", (), "kind 'secret' is not a kind of v1: kinds are case-sensitive; write Secret"),
    ("", "SECRET", (), "write Secret"),
    ("apps", "deployment", (), "kind 'deployment' is not a kind of apps: kinds are case-sensitive; write Deployment"),
    ("", "event", (), "write Event"),  # the core group's own Event, not events.k8s.io's
    ("", "Deployment", (), "kind 'Deployment' is not in the core group (apiVersion v1): Deployment is in the "
                           "apps group (apiVersion apps/...)"),
    ("", "ingress", (), "Ingress is in the networking.k8s.io group"),
    ("", "Widget", (), None),  # the core group's unknown kinds are the API server's to refuse
    ("apps", "Secret", (), None),  # other groups' kinds are not judged: a newer release may add them
    ("apps", "NewKind", (), None),
    ("example.com", "Widget", (WIDGET,), None),
    ("example.com", "widget", (WIDGET,), "kind 'widget' is not a kind of example.com: kinds are case-sensitive; "
                                         "write Widget"),
    ("example.com", "widget", (), None),  # no CRD in the repo: its spelling is unknown
    ("other.com", "widget", (WIDGET,), None),
])
def test_kind_spelling(group, kind, custom, expected):
    problem = Kinds(custom).problem(group, kind)
    assert problem == expected if expected is None or expected.startswith("kind ") else expected in problem


@pytest.mark.parametrize("group,kind,custom,name,valid", [
    ("", "Namespace", (), A63, True), ("", "Namespace", (), A64, False), ("", "Namespace", (), "a.b", False),
    ("", "Service", (), "1web", True),  # DNS-1123, not 1035: RelaxedServiceNameValidation is on in 1.36
    ("", "Service", (), "web.x", False), ("", "Service", (), A64, False),
    ("apps", "StatefulSet", (), "db.x", False), ("apps", "StatefulSet", (), A63, True),
    ("apps", "Deployment", (), "web.x", True), ("apps", "Deployment", (), A253, True),
    ("apps", "Deployment", (), A254, False), ("apps", "Deployment", (), "Web", False),
    ("", "ConfigMap", (), "a_b", False), ("", "Secret", (), "a.b-c", True),
    ("batch", "CronJob", (), "a" * 52, True), ("batch", "CronJob", (), "a" * 53, False),
    ("batch", "CronJob", (), "A", False),
    ("rbac.authorization.k8s.io", "ClusterRole", (), "system:Aggregate to admin", True),
    ("rbac.authorization.k8s.io", "RoleBinding", (), "a/b", False),
    ("certificates.k8s.io", "CertificateSigningRequest", (), "Any:Name", True),
    ("networking.k8s.io", "IPAddress", (), "2001:db8::1", True),
    ("apiregistration.k8s.io", "APIService", (), "v1.", True),
    ("", "Event", (), "Any_Name.1", True), ("events.k8s.io", "Event", (), "Any_Name.1", False),
    ("example.com", "Widget", (WIDGET,), "Bad_Name", False), ("example.com", "Widget", (WIDGET,), "good", True),
    # a kind known neither way may be an aggregated API's, with rules of its own
    ("example.com", "Widget", (), "Bad_Name", True), ("example.com", "Widget", (), "a/b", False),
    ("apps", "NewKind", (), "Bad_Name", True),
])
def test_name_rules_by_kind(group, kind, custom, name, valid):
    assert ok(Kinds(custom).name_rule(group, kind).check(name)) is valid


@pytest.mark.parametrize("group,kind,case_sensitive", [
    ("apps", "Deployment", False), ("", "Namespace", False), ("rbac.authorization.k8s.io", "ClusterRole", True),
    ("example.com", "Unknown", True),
])
def test_names_compare_without_case_only_where_uppercase_is_refused(group, kind, case_sensitive):
    assert Kinds().name_rule(group, kind).case_sensitive is case_sensitive


def compact_json(value) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


@pytest.mark.parametrize("value", [
    {}, [], "", "x", 0, -12, 1.5, True, False, None, {"a": 1}, [1, "x", None, True, False, 1.5, []],
    {"a": {"b": [1, {"c": "é"}]}, "k": [], "e": {}}, {2: "x", None: "y", True: "z"}, ["日本語", {"ключ": "ü"}],
])
def test_json_size_is_compact_json_bytes(value):
    assert rules.json_size(value) == compact_json(value)
    if isinstance(value, (dict, list)):
        assert rules._container_size_deep(value, {}, {}) == compact_json(value)


def test_json_size_does_not_count_escapes_so_it_never_exceeds_json():
    value = {"a": 'line\nwith "quotes" and \\'}
    assert rules.json_size(value) < compact_json(value)


def alias_bomb(levels: int, width: int = 10) -> list:
    node: list = ["x"] * width
    for _ in range(levels):
        node = [node] * width  # the same list `width` times: what YAML aliases build
    return node


def test_json_size_of_shared_values_takes_time_of_the_file_not_of_the_expansion():
    started = time.perf_counter()
    size = rules.json_size(alias_bomb(30))
    assert time.perf_counter() - started < 1
    assert size > 10 ** 30
    small = alias_bomb(3)
    assert rules.json_size(small) == compact_json(small)


def test_json_size_refuses_a_value_that_contains_itself():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        rules.json_size({"a": loop})
    looped: dict = {}
    looped["self"] = looped
    with pytest.raises(ValueError, match="contains itself"):
        rules._container_size_deep(looped, {}, {})


def test_json_size_of_nesting_deeper_than_the_python_stack():
    deep: list = []
    for _ in range(20_000):
        deep = [deep]
    assert rules.json_size(deep) == 2 * 20_001
    mapping: dict = {}
    for _ in range(5_000):
        mapping = {"k": mapping}
    assert rules.json_size(mapping) == 2 + 5_000 * len('{"k":}')


@pytest.mark.parametrize("field,value,encoded,expected", [
    ("data", None, True, []),
    ("data", {}, True, []),
    ("data", {"k": "aGk=", "e": "", "n": None}, True, []),
    ("data", "a string", True, ["data must be a mapping of keys to base64 strings, not a string"]),
    ("stringData", ["x"], False, ["stringData must be a mapping of keys to strings, not a list"]),
    ("data", {"k": "hunter2"}, True, ["data.k is not base64: incorrect padding"]),
    ("data", {"k": 8080}, False, ["data.k must be a string, not a number: quote it"]),
    ("data", {"k": True}, False, ["data.k must be a string, not a boolean: quote it"]),
    ("data", {"k": {"a": "b"}}, False, ["data.k must be a string, not a mapping"]),
    ("data", {"bad key": "x"}, False, ["data key 'bad key' must be letters, digits, '-', '_' and '.'"]),
    ("data", {"..x": "x"}, False, ["data key '..x' must not be '.' or '..' or start with '..'"]),
    ("data", {"tls.crt": "x"}, False, []),
])
def test_data_problems(field, value, encoded, expected):
    assert rules.data_problems(field, value, encoded=encoded) == expected


def test_data_problems_never_show_a_value():
    problems = rules.data_problems("data", {"k": "hunter2-secret!", "n": 12345678}, encoded=True)
    assert len(problems) == 2
    assert not any("hunter2" in p or "12345678" in p for p in problems)


@pytest.mark.parametrize("encoded,plain,size", [
    (None, None, 0), ({"k": "aGk="}, None, 2), ({"k": "aGk="}, {"k": "abc"}, 3), ({"a": "aGk="}, {"b": "é"}, 4),
    ({"k": None}, {"j": None}, 0),
])
def test_data_size_merges_string_data_as_the_api_server_does(encoded, plain, size):
    assert rules.data_size(encoded, plain) == size


@pytest.mark.parametrize("name,spec,valid", [
    ("widgets.example.com", {"group": "example.com", "names": {"plural": "widgets"}}, True),
    ("widget.example.com", {"group": "example.com", "names": {"plural": "widgets"}}, False),
    ("Widgets.example.com", {"group": "example.com", "names": {"plural": "widgets"}}, False),
    ("anything", None, True), ("anything", {"group": "example.com"}, True),
])
def test_crd_name(name, spec, valid):
    assert ok(rules.crd_name(name, spec)) is valid


@pytest.mark.parametrize("labels,expected", [
    (None, []), ({}, []), ({"app": "web", "tier": ""}, []), ({"app": None}, []),
    ({1: "a"}, []),  # sent as "1", a valid key
    ("app=web", ["metadata.labels must be a mapping of keys to strings, not a string"]),
    ({"app": 1}, ["label 'app' must be a string, not a number: quote it"]),
    ({"version": 1.0}, ["label 'version' must be a string, not a number: quote it"]),
    ({"app": "a" * 64}, ["label 'app': value " + repr("a" * 64) + " must be at most 63 characters (it has 64)"]),
    ({"a/b/c": "x"}, ["label key 'a/b/c' must be letters, digits, '-', '_' and '.', starting and ending with a "
                      "letter or digit, optionally after a DNS-1123 subdomain prefix and '/' (example.com/my-key), "
                      "with at most one '/'"]),
])
def test_label_problems(labels, expected):
    assert rules.label_problems(labels) == expected


def test_annotations_may_total_256_kib():
    key = "k"
    assert rules.annotation_problems({key: "x" * (256 * 1024 - len(key))}) == []
    assert rules.annotation_problems({key: "x" * (256 * 1024 - len(key) + 1)}) == [
        "metadata.annotations are 262145 bytes in all; at most 262144 (256 KiB)"]
    # bytes, not characters, as the API server counts them
    assert rules.annotation_problems({key: "é" * (128 * 1024)}) != []


@pytest.mark.parametrize("annotations,expected", [
    (None, []), ({"Example.COM/Key": "v", "note": ""}, []), ({"a": None}, []),
    ([], ["metadata.annotations must be a mapping of keys to strings, not a list"]),
    ({"replicas": 3}, ["annotation 'replicas' must be a string, not a number: quote it"]),
    ({"a b": "x"}, ["annotation key 'a b' must be letters, digits, '-', '_' and '.', starting and ending with a "
                    "letter or digit, optionally after a DNS-1123 subdomain prefix and '/' (example.com/my-key)"]),
])
def test_annotation_problems(annotations, expected):
    assert rules.annotation_problems(annotations) == expected


@pytest.mark.parametrize("value,shown", [
    ("web", "'web'"), ("a\nb", "'a\\nb'"), ("x" * 81, "'" + "x" * 80 + "'... (81 characters)"),
])
def test_show_quotes_and_cuts_values_short(value, shown):
    assert rules.show(value) == shown


@pytest.mark.parametrize("depth", [1, 2, 50, 900, 20_000])
def test_json_shape_counts_levels_recursively_and_past_the_python_stack(depth):
    deep: object = "x"
    for index in range(depth):
        deep = {"k": deep} if index % 2 else [deep]
    assert rules.json_shape(deep)[1] == depth
    assert rules.json_shape({"flat": 1, "d": deep})[1] == depth + 1


def test_json_shape_counts_an_alias_at_the_depth_it_is_used_not_where_it_was_first_met():
    anchor: dict = {"leaf": {"x": 1}}  # height 2
    shallow_first = {"a": anchor, "b": {"c": {"d": {"e": anchor}}}}
    assert rules.json_shape(shallow_first)[1] == 6
    deep: object = anchor
    for _ in range(3_000):  # past Python's stack: the iterative count reuses what the recursive one finished
        deep = {"k": deep}
    assert rules.json_shape({"first": anchor, "deep": deep})[1] == 3_003

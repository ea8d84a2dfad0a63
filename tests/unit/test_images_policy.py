import functools
import random

import pytest
import semver

from gitops.errors import SettingsError
from gitops.images.policy import (
    TagPolicy,
    parse_range,
    parse_version,
    policy_from_flux_v1,
    policy_from_mapping,
    select_tag,
)

WHERE = "stacks/Pulumi.dev.yaml: gitops:imagePolicies"


# --- versions ------------------------------------------------------------------------------

@pytest.mark.parametrize("tag,prerelease", [
    ("1.2.3", False), ("v1.2.3", False), ("0.0.0", False), ("1.2.3+build.5", False),
    ("1.2.3-rc.1", True), ("v1.2.3-0", True), ("1.2.3-alpha-1.x+sha.abc", True), ("10.20.30", False),
])
def test_versions_flux_reads(tag, prerelease):
    parsed = parse_version(tag)
    assert parsed is not None and parsed[1] is prerelease


@pytest.mark.parametrize("tag", [
    "latest", "main-abc123", "2024-01-15", "20240115T1200", "20240115", "1234", "1.2", "1", "V1.2.3",
    "01.2.3", "1.02.3", "1.2.3-01", "1.2.3-", "1.2.3+", "1.2.3.4", "1.2.3-rc..1", " 1.2.3", "vv1.2.3",
])
def test_non_versions_are_none(tag):
    # Strict like Flux: a date or build number must never win as a huge major version.
    assert parse_version(tag) is None


def test_version_order_matches_the_semver_spec():
    versions = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0-rc.9", "1.0.0-rc.10", "1.0.0", "1.0.1", "1.1.0",
                "1.10.0", "2.0.0-0", "2.0.0", "10.0.0"]
    shuffled = versions[:]
    random.Random(3).shuffle(shuffled)

    def compare(a, b):
        return semver.Version.parse(a).compare(b)

    by_library = sorted(shuffled, key=functools.cmp_to_key(compare))
    by_us = sorted(shuffled, key=lambda v: parse_version(v)[0])
    assert by_us == by_library == versions


def test_build_metadata_and_v_prefix_do_not_change_the_version():
    assert parse_version("1.2.3+build.5")[0] == parse_version("v1.2.3")[0] == parse_version("1.2.3")[0]


# --- ranges --------------------------------------------------------------------------------

@pytest.mark.parametrize("rng,version,admitted", [
    ("^1.2.3", "1.8.1", True), ("^1.2.3", "2.0.0", False), ("^1.2.3", "1.2.2", False),
    ("^1.2", "1.2.0", True), ("^1.2", "1.99.0", True), ("^1", "1.9.9", True), ("^1", "2.0.0", False),
    ("^0.2.3", "0.2.5", True), ("^0.2.3", "0.3.0", False), ("^0.0.3", "0.0.3", True), ("^0.0.3", "0.0.4", False),
    ("^0", "0.9.0", True), ("^0", "1.0.0", False),
    ("^0.0", "0.0.5", True), ("^0.0", "0.1.0", False), ("^*", "3.0.0", True),
    ("~1.2.3", "1.2.9", True), ("~1.2.3", "1.2.2", False), ("~1.2.3", "1.3.0", False), ("~1.2", "1.2.0", True),
    ("~1.2", "1.3.0", False), ("~1", "1.9.0", True), ("~1", "2.0.0", False),
    ("~>1.2", "1.2.5", True), ("~*", "7.0.0", True),
    (">=1.0.0 <2.0.0", "1.5.0", True), (">=1.0.0 <2.0.0", "2.0.0", False), (">=1.0.0 <2.0.0", "0.9.9", False),
    (">=1.0 <2.0", "1.0.0", True), (">=1.0, <2.0", "1.9.9", True),
    (">= 1.0 , < 2.0", "2.0.0", False), ("=>1.0", "1.0.0", True),
    ("1.x", "1.5.0", True), ("1.x", "2.0.0", False), ("1.2.x", "1.2.7", True), ("1.2.X", "1.3.0", False),
    ("*", "9.9.9", True), ("x", "0.0.1", True), ("1.*.*", "1.4.4", True),
    ("1.2.3 - 1.4.0", "1.4.0", True), ("1.2.3 - 1.4.0", "1.4.1", False), ("1.2.3 - 1.4.0", "1.2.2", False),
    ("1.2.3 - 1.4", "1.4.9", True), ("1.2.3 - 1.4", "1.5.0", False), ("1.2 - 1.4.5", "1.2.0", True),
    ("^1.2 || ^3", "3.1.0", True), ("^1.2 || ^3", "2.0.0", False), ("^1.2||^3", "1.3.0", True),
    ("^1.2.3-rc", "1.2.3", True),
    ("=1.2.3", "1.2.3", True), ("=1.2.3", "1.2.4", False), ("1.2.3", "1.2.3", True), ("=1.2.3", "1.2.3+b.1", True),
    ("v1.2.3", "1.2.3", True), ("1.2", "1.2.9", True), ("1.2", "1.3.0", False),
    (">1.2", "1.2.9", False), (">1.2", "1.3.0", True), (">1", "1.9.9", False), (">1", "2.0.0", True),
    (">1.2.3", "1.2.4", True), (">1.2.3", "1.2.3", False),
    ("<=1.2", "1.2.9", True), ("<=1.2", "1.3.0", False), ("<=1.2.3", "1.2.3", True), ("<=1.2.3", "1.2.4", False),
    ("=<1", "1.9.9", True), ("<1.2", "1.1.9", True), ("<1.2", "1.2.0", False),
    ("!=1.2.3", "1.2.3", False), ("!=1.2.3", "1.2.4", True), ("!=1.x", "1.5.0", False), ("!=1.x", "2.0.0", True),
    (">=1.0.0 !=1.5.0", "1.5.0", False), (">=1.0.0 !=1.5.0", "1.6.0", True), ("!=*", "1.0.0", False),
])
def test_ranges_follow_masterminds(rng, version, admitted):
    key, pre = parse_version(version)
    assert parse_range(rng).admits(key, pre) is admitted


@pytest.mark.parametrize("rng,version,admitted", [
    ("^1.2", "1.3.0-rc.1", False),
    ("*", "1.0.0-rc.1", False),
    (">=1.0.0 <2.0.0", "1.5.0-beta", False),
    (">=1.2.3-0", "1.3.0-rc.1", True),
    (">=1.2.3-0 <2.0.0", "1.5.0-beta", True),
    (">=1.2.3-0 <2.0.0", "2.0.0-rc.1", True),  # Masterminds: the whole AND group opts in
    ("^1.2.3-rc", "1.2.3-rc.2", True),
    ("^1.2.3-rc", "1.2.3-alpha", False),  # alpha < rc
    ("^1.2.3-rc", "1.4.0-beta", True),
    ("^1.2.3-rc", "2.0.0-rc.1", False),
    ("~1.2.3-0", "1.2.9-1", True),
    (">=1.0.0 || >=2.0.0-0", "2.1.0-rc.1", True),  # the second branch asks for pre-releases
    ("^1.0.0 || >=3.0.0-0 <3.5.0", "1.5.0-rc.1", False),  # only the first branch covers it
    ("^1.0.0 || >=3.0.0-0 <3.5.0", "3.1.0-rc.1", True),
])
def test_prereleases_only_when_the_range_asks(rng, version, admitted):
    key, pre = parse_version(version)
    assert pre
    assert parse_range(rng).admits(key, pre) is admitted


@pytest.mark.parametrize("rng", [
    "", "   ", "abc", ">=", "1.2.3.4", ">=1.0.0<2.0.0", "1.0 ||", "|| 1.0", "^1.2 ^", "~>", "1.0,,2.0",
    "1.0,", ">=1.0 latest", "1.2.3 -", "> = 1.0", "1.0 && 2.0", "1x",
])
def test_invalid_ranges_are_refused(rng):
    with pytest.raises(SettingsError, match="semver range"):
        parse_range(rng)


# --- selection -----------------------------------------------------------------------------

TRICKY = ["v1.2.3", "1.2.4-rc.1", "1.2.3+build.5", "2024-01-15", "20240115T1200", "20240115", "latest",
          "main-abc123", "1.2.2", "v1.3.0", "1.10.0", "1.9.9", "1.2", "99999"]


@pytest.mark.parametrize("rng,expected", [
    ("*", "1.10.0"),
    ("^1.2", "1.10.0"),
    ("~1.2", "v1.2.3"),  # == 1.2.3+build.5; the tie goes to the larger tag text, whatever the order
    ("~1.3", "v1.3.0"),  # the tag as the registry lists it, `v` included
    ("<1.3.0", "v1.2.3"),
    ("1.2.2", "1.2.2"),
    (">=1.2.4-0 <1.3.0", "1.2.4-rc.1"),
    ("1.2.3 - 1.9", "1.9.9"),
    ("^2 || ~1.9", "1.9.9"),
    ("^2", None),
])
@pytest.mark.parametrize("reverse", [False, True])
def test_semver_selection_over_tricky_tags(rng, expected, reverse):
    tags = list(reversed(TRICKY)) if reverse else TRICKY
    assert select_tag(TagPolicy("p", semver=rng), tags).tag == expected


def test_reason_says_why():
    chosen = select_tag(TagPolicy("p", semver="~1.2"), TRICKY)
    assert chosen.reason == "v1.2.3 is the highest of 3 tags matching ~1.2 (1 pre-release excluded, 7 tags not semver)"
    assert (chosen.considered, chosen.matched, chosen.rejected_prerelease, chosen.unparsable) == (14, 3, 1, 7)
    none = select_tag(TagPolicy("p", semver="^2"), TRICKY)
    assert none.tag is None
    assert none.reason == "no tag matches ^2 (of 14 tags: 7 not semver, 7 outside ^2)"
    assert select_tag(TagPolicy("p", semver="^1.2"), []).reason == "no tag matches ^1.2: the repository lists no tags"


def test_five_thousand_tags_pick_the_true_maximum():
    rnd = random.Random(42)
    tags = set()
    while len(tags) < 5000:
        v = f"{rnd.randrange(0, 6)}.{rnd.randrange(0, 40)}.{rnd.randrange(0, 40)}"
        kind = rnd.random()
        if kind < 0.1:
            v += f"-rc.{rnd.randrange(0, 12)}"
        elif kind < 0.15:
            v = "v" + v
        elif kind < 0.2:
            v = f"build-{rnd.randrange(10**6)}"
        tags.add(v)
    tags = sorted(tags)
    rnd.shuffle(tags)

    def oracle(tag):  # the semver library decides what is in >=1.0.0 <4.0.0 and what is largest
        try:
            v = semver.Version.parse(tag[1:] if tag.startswith("v") else tag)
        except ValueError:
            return None
        return v if not v.prerelease and v.match(">=1.0.0") and v.match("<4.0.0") else None

    expected = max((t for t in tags if oracle(t)), key=lambda t: (oracle(t), t))
    chosen = select_tag(TagPolicy("p", semver=">=1.0.0 <4.0.0"), tags)
    assert chosen.tag == expected
    assert chosen.matched == sum(1 for t in tags if oracle(t))


def test_ten_thousand_tags_pick_the_highest_in_range():
    # Speed is measured in bench/images.py, not asserted here.
    tags = [f"{i // 1000}.{i // 10 % 100}.{i % 10}" for i in range(9000)]
    tags += [f"main-{i:x}-{1700000000 + i}" for i in range(1000)]
    policy = TagPolicy("p", semver="^1.2 || ~3.4 || >=5.0.0-0 <6")
    assert select_tag(policy, tags).tag == "5.99.9"


TIMESTAMPED = ["main-1a2b3c4-1700000100", "main-ffee001-1700000050", "main-0000aaa-1700000999",
               "feature-x-abcdef0-1800000000", "main-zzz-1900000000", "latest"]


@pytest.mark.parametrize("extract", ["$ts", "${ts}", "$1"])
def test_pattern_and_extract_numerical(extract):
    policy = TagPolicy("p", pattern=r"^main-[a-f0-9]+-(?P<ts>[0-9]+)", extract=extract, order="numerical")
    chosen = select_tag(policy, TIMESTAMPED)
    assert chosen.tag == "main-0000aaa-1700000999"
    assert chosen.key == "1700000999"
    assert chosen.filtered_out == 3 and chosen.matched == 3
    assert chosen.reason.startswith("main-0000aaa-1700000999 (key 1700000999) is the highest number of 3 tags")


def test_numerical_ascending_picks_the_smallest():
    policy = TagPolicy("p", pattern=r"^main-[a-f0-9]+-(?P<ts>[0-9]+)", extract="$ts", order="numerical",
                       direction="asc")
    assert select_tag(policy, TIMESTAMPED).tag == "main-ffee001-1700000050"


@pytest.mark.parametrize("tags,direction,expected", [
    (["1", "10", "9", "2.5", "-3", "x", "1e2", "nan", "inf", ""], "desc", "1e2"),
    (["1", "10", "9", "2.5", "-3", "x", "1e2", "nan", "inf", ""], "asc", "-3"),
    (["007", "8"], "desc", "8"),
    (["latest", "main"], "desc", None),
])
def test_numerical_skips_what_is_not_a_number(tags, direction, expected):
    assert select_tag(TagPolicy("p", order="numerical", direction=direction), tags).tag == expected


@pytest.mark.parametrize("direction,expected", [("desc", "2024-01-16T09-00-00Z"), ("asc", "2023-12-31T23-59-59Z")])
def test_alphabetical_orders_timestamps(direction, expected):
    tags = ["2024-01-15T10-00-00Z", "2024-01-16T09-00-00Z", "2023-12-31T23-59-59Z"]
    assert select_tag(TagPolicy("p", order="alphabetical", direction=direction), tags).tag == expected


def test_extract_turns_a_tag_into_a_version():
    policy = TagPolicy("p", pattern=r"^release-(.*)$", extract="$1", semver="~1.2")
    chosen = select_tag(policy, ["release-1.2.5", "release-1.3.0", "release-1.2.9-rc.1", "1.2.8", "release-x"])
    assert chosen.tag == "release-1.2.5" and chosen.key == "1.2.5"


def test_pattern_filters_before_the_range():
    policy = TagPolicy("p", pattern=r"^v", semver="^1")
    chosen = select_tag(policy, ["v1.2.0", "1.9.0", "v2.0.0"])
    assert chosen.tag == "v1.2.0"
    assert chosen.reason == "v1.2.0 is the highest of 1 tag matching pattern ^v and range ^1"


@pytest.mark.parametrize("glob,expected", [
    ("*", "2.0.0"), ("1.2.*", "1.2.10"), ("1.*", "1.3.0"), ("prod-*", None), ("1.2.1", "1.2.1"),
])
def test_flux_v1_globs_order_matches_as_versions(glob, expected):
    tags = ["1.2.1", "1.2.10", "1.2.9", "1x2.11", "1.3.0", "2.0.0", "prod-abc", "1.4.0-rc.1"]
    assert select_tag(TagPolicy("p", glob=glob), tags).tag == expected


def test_a_glob_with_no_version_says_so():
    reason = select_tag(TagPolicy("p", glob="prod-*"), ["prod-abc", "prod-1.2", "1.3.0"]).reason
    assert reason == "no tag matches glob prod-* (of 3 tags: 1 not matching glob prod-*, 2 not semver)"


# --- policies from Flux v1 annotations and from YAML ----------------------------------------

@pytest.mark.parametrize("spec,semver_range,glob,pattern", [
    ("semver:~1.2", "~1.2", None, None),
    ("semver: >=1.0 <2.0", ">=1.0 <2.0", None, None),
    ("glob:1.2.*", None, "1.2.*", None),
    ("1.2.*", None, "1.2.*", None),
    ("glob:*", None, "*", None),
    ("", None, "*", None),
    ("regex:^v1\\.", None, None, "^v1\\."),
    ("regexp:^v1\\.[0-9]+$", None, None, "^v1\\.[0-9]+$"),
])
def test_flux_v1_specs(spec, semver_range, glob, pattern):
    policy = policy_from_flux_v1("nginx:1.2", spec, name="v1:Deployment//web/app")
    assert (policy.semver, policy.glob, policy.pattern, policy.order) == (semver_range, glob, pattern, "semver")
    assert policy.image == "nginx" and policy.name == "v1:Deployment//web/app"


@pytest.mark.parametrize("spec", ["semver:", "semver:abc", "regex:(", "regexp:[a-"])
def test_flux_v1_bad_specs(spec):
    with pytest.raises(SettingsError):
        policy_from_flux_v1("nginx:1.2", spec)


def test_flux_v1_regex_is_searched_not_anchored():
    policy = policy_from_flux_v1("", "regex:1\\.2\\.")
    assert policy.image == ""
    assert select_tag(policy, ["1.2.3", "v1.2.9", "1.3.0"]).tag == "v1.2.9"


def test_policy_from_mapping_with_semver_and_with_pattern():
    web = policy_from_mapping("web", {"image": "127.0.0.1:5000/demo/web", "semver": ">=1.0.0 <2.0.0"}, WHERE)
    assert web == TagPolicy("web", image="127.0.0.1:5000/demo/web", semver=">=1.0.0 <2.0.0", order="semver")
    ts = policy_from_mapping("ts", {"image": "ghcr.io/o/a", "pattern": r"^main-[a-f0-9]+-(?P<ts>\d+)$",
                                    "extract": "$ts", "order": "numerical", "direction": "asc"}, WHERE)
    assert (ts.order, ts.direction, ts.extract) == ("numerical", "asc", "$ts")
    assert policy_from_mapping("any", {"image": "nginx"}, WHERE).order == "semver"
    alphabetical = policy_from_mapping("flux-system:app", {"image": "nginx", "order": "alphabetical"}, WHERE)
    assert alphabetical.direction == "desc"


@pytest.mark.parametrize("name,data,message", [
    ("web", {"image": "nginx", "semver": "^1", "colour": "red"}, f"{WHERE}.web.colour: unknown key"),
    ("web", {"semver": "^1"}, f"{WHERE}.web.image: missing"),
    ("web", {"image": "nginx:1.2"}, f"{WHERE}.web.image: 'nginx:1.2' names a tag or digest"),
    ("web", {"image": "Nginx"}, f"{WHERE}.web.image: invalid image reference 'Nginx'"),
    ("web", {"image": "nginx", "semver": "not a range"}, f"{WHERE}.web.semver: invalid semver range"),
    ("web", {"image": "nginx", "semver": 1.2}, f"{WHERE}.web.semver: must be a non-empty string (quote it"),
    ("web", {"image": "nginx", "semver": ""}, f"{WHERE}.web.semver: must be a non-empty string"),
    ("web", {"image": "nginx", "semver": "^1", "order": "numerical"},
     f"{WHERE}.web.semver: a semver range needs order: semver"),
    ("web", {"image": "nginx", "order": "newest"}, f"{WHERE}.web.order: 'newest' is not one of"),
    ("web", {"image": "nginx", "semver": "^1", "direction": "asc"}, f"{WHERE}.web.direction: applies to numerical"),
    ("web", {"image": "nginx", "order": "numerical", "direction": "up"},
     f"{WHERE}.web.direction: 'up' is not asc or desc"),
    ("web", {"image": "nginx", "pattern": "(", "order": "numerical"},
     f"{WHERE}.web.pattern: invalid regular expression"),
    ("web", {"image": "nginx", "extract": "$1", "order": "numerical"}, f"{WHERE}.web.extract: needs a pattern"),
    ("web", {"image": "nginx", "pattern": "^(a)-(?P<ts>\\d+)", "extract": "$ts$3", "order": "numerical"},
     f"{WHERE}.web.extract: $3 but the pattern has 2 groups"),
    ("web", {"image": "nginx", "pattern": "^(?P<ts>\\d+)", "extract": "$tsx", "order": "numerical"},
     f"{WHERE}.web.extract: the pattern has no group named 'tsx'"),
    ("web", {"image": "nginx", "pattern": "^(\\d+)", "extract": "$1x", "order": "numerical"},
     f"{WHERE}.web.extract: the pattern has no group named '1x'"),
    ("web", ["nginx"], f"{WHERE}.web: must be a mapping"),
    ("we b", {"image": "nginx"}, f"{WHERE}.we b: a policy name is"),
])
def test_policy_from_mapping_names_the_bad_setting(name, data, message):
    with pytest.raises(SettingsError) as info:
        policy_from_mapping(name, data, WHERE)
    assert str(info.value).startswith(message), str(info.value)


def test_extract_follows_go_template_rules():
    # ${1}0 appends a literal 0 to group 1; $$ is a literal dollar.
    policy = policy_from_mapping("p", {"image": "nginx", "pattern": r"^b(\d+)", "extract": "${1}0",
                                       "order": "numerical"}, WHERE)
    chosen = select_tag(policy, ["b7", "b12", "x99"])
    assert (chosen.tag, chosen.key) == ("b12", "120")
    dollar = TagPolicy("p", pattern=r"^(\w+)$", extract="$$$1", order="alphabetical")
    assert select_tag(dollar, ["abc"]).key == "$abc"

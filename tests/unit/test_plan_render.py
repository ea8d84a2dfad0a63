"""Rendering a plan: counts, risky-first order, replace reasons, secrets never shown, the special
plans (no changes, invalid manifests, engine error), fence escaping, and splitting into comments."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from gitops.errors import Problem
from gitops.plan import render
from gitops.plan.github import COMMENT_LIMIT
from gitops.plan.model import Change, FieldChange, Op, Plan

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MARKER = "gitops/prod"
SECRET_OLD, SECRET_NEW = "hunter2-old-SECRET", "hunter2-new-SECRET"


def plan_of(*changes: Change, **kw) -> Plan:
    return Plan(stack="prod", ref="main", commit=COMMIT, changes=changes, **kw)


def mixed() -> Plan:
    return plan_of(
        Change("ConfigMap/prod/new", Op.CREATE, (FieldChange("data.k", "add", new="v"),)),
        Change("Deployment/prod/web", Op.REPLACE,
               (FieldChange("spec.selector.matchLabels.app", "update", "web", "api", replaces=True),),
               ("spec.selector",)),
        Change("ConfigMap/prod/old", Op.DELETE),
        Change("Deployment/prod/api", Op.UPDATE, (FieldChange("spec.replicas", "update", 2, 3),)),
        Change("Service/prod/b", Op.UPDATE, (FieldChange("spec.type", "update", "ClusterIP", "NodePort"),)),
        Change("Service/prod/a", Op.DELETE),
        unchanged=12)


def all_formats(plan: Plan) -> dict[str, str]:
    return {"text": render.to_text(plan), "json": render.to_json(plan),
            "markdown": render.to_markdown(plan, marker=MARKER),
            "comments": "\n".join(render.markdown_comments(plan, marker=MARKER, limit=3000))}


# ---------------------------------------------------------------- counts and order


def test_json_schema_and_counts():
    doc = json.loads(render.to_json(mixed()))
    assert list(doc) == ["stack", "ref", "commit", "counts", "unchanged", "changes", "problems", "error"]
    assert doc["counts"] == {"create": 1, "update": 2, "replace": 1, "delete": 2}
    assert doc["unchanged"] == 12 and doc["commit"] == COMMIT and doc["error"] is None
    replace = next(c for c in doc["changes"] if c["op"] == "replace")
    assert replace["replace_reasons"] == ["spec.selector"]
    assert replace["fields"] == [{"path": "spec.selector.matchLabels.app", "kind": "update", "old": "web",
                                  "new": "api", "secret": False, "replaces": True}]


RISKY_ORDER = ["ConfigMap/prod/old", "Service/prod/a", "Deployment/prod/web", "Deployment/prod/api",
               "Service/prod/b", "ConfigMap/prod/new"]


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_risky_first_then_subject(fmt):
    text = all_formats(mixed())[fmt]
    positions = [text.index(subject) for subject in RISKY_ORDER]
    assert positions == sorted(positions)


def test_json_order_matches():
    assert [c["subject"] for c in json.loads(render.to_json(mixed()))["changes"]] == RISKY_ORDER


def test_markdown_counts_table_and_warning():
    md = render.to_markdown(mixed(), marker=MARKER)
    assert "| ➕ Create | ✏️ Update | ⚠️ Replace | 🗑️ Delete | Unchanged |" in md
    assert "| 1 | 2 | **1** | **2** | 12 |" in md
    assert "> [!WARNING]" in md and "**deletes 2 objects**" in md and "**replaces 1**" in md
    headings = ["#### 🗑️ Delete (2)", "#### ⚠️ Replace (1)", "#### ✏️ Update (2)", "#### ➕ Create (1)"]
    assert [md.index(h) for h in headings] == sorted(md.index(h) for h in headings)


def test_no_warning_without_destructive_changes():
    md = render.to_markdown(plan_of(Change("ConfigMap/prod/new", Op.CREATE)), marker=MARKER)
    assert "[!WARNING]" not in md


def test_title_names_stack_ref_and_short_commit():
    first_lines = render.to_markdown(mixed(), marker=MARKER).splitlines()[:2]
    assert first_lines[0] == f"<!-- gitops-preview:{MARKER} part 1/1 -->"
    assert first_lines[1] == "### 📋 gitops plan for stack `prod` at `main` (`0123456`)"


def test_ref_that_is_the_commit_is_shown_once():
    plan = Plan(stack="prod", ref=COMMIT, commit=COMMIT)
    assert "at `0123456`:" in render.to_markdown(plan, marker=MARKER)
    assert "at 0123456:" in render.to_text(plan)


@pytest.mark.parametrize("reasons,fields,phrase", [
    (("spec.selector",), (), "replaced because <code>spec.selector</code> is immutable"),
    (("spec.selector", "spec.clusterIP"), (),
     "replaced because <code>spec.selector</code> and <code>spec.clusterIP</code> are immutable"),
    ((), (FieldChange("spec.volumeName", "update", "a", "b", replaces=True),),
     "replaced because <code>spec.volumeName</code> is immutable"),
    ((), (), "replaced (the engine named no field)"),
])
def test_replace_reason(reasons, fields, phrase):
    plan = plan_of(Change("Deployment/prod/web", Op.REPLACE, fields, reasons))
    md = render.to_markdown(plan, marker=MARKER)
    assert f"<details open><summary><code>Deployment/prod/web</code> — {phrase}</summary>" in md
    assert re.sub(r"</?code>", "", phrase) in render.to_text(plan)


def test_field_diff_lines():
    md = render.to_markdown(mixed(), marker=MARKER)
    assert "```diff\n- spec.replicas: 2\n+ spec.replicas: 3\n```" in md
    assert '+ spec.selector.matchLabels.app: "api"  # forces replacement' in md
    assert '```diff\n+ data.k: "v"\n```' in md


def test_delete_lists_the_object_only():
    plan = plan_of(Change("ConfigMap/prod/old", Op.DELETE, (FieldChange("data.k", "delete", old="gone"),)))
    md = render.to_markdown(plan, marker=MARKER)
    assert "- `ConfigMap/prod/old`" in md
    assert "gone" not in md and "<details" not in md


@pytest.mark.parametrize("value,expected", [
    ({"cpu": "1"}, ['+ spec.resources: {"cpu": "1"}']),
    ({"limits": {"cpu": "1", "memory": "1Gi" * 40}}, ["+ spec.resources:", "+     limits:", "+       cpu: '1'"]),
    ("line one\nline two\n", ["+ spec.resources: |", "+     line one", "+     line two"]),
    (None, ["+ spec.resources: null"]),
    (True, ["+ spec.resources: true"]),
])
def test_value_shapes(value, expected):
    lines = render.field_lines(FieldChange("spec.resources", "add", new=value))
    assert all(line in lines for line in expected), lines


def test_multiline_update_is_a_line_diff():
    old = "server {\n  listen 80;\n  root /srv;\n}\n"
    lines = render.field_lines(FieldChange("data.nginx.conf", "update", old, old.replace("80", "8080")))
    assert lines[0] == "~ data.nginx.conf: |"
    assert "-       listen 80;" in lines and "+       listen 8080;" in lines
    assert "        root /srv;" in lines  # context, unmarked


# ---------------------------------------------------------------- secrets


def secret_plans() -> list[Plan]:
    hidden = FieldChange("data.password", "update", None, None, secret=True)
    leaky = FieldChange("data.password", "update", SECRET_OLD, SECRET_NEW, secret=True)  # a builder bug
    added = FieldChange("data.token", "add", new=SECRET_NEW, secret=True)
    removed = FieldChange("data.old", "delete", old=SECRET_OLD, secret=True, replaces=True)
    return [plan_of(Change("Secret/prod/db", op, fields, ("data.old",) if op == Op.REPLACE else ()))
            for op in (Op.UPDATE, Op.REPLACE, Op.CREATE) for fields in [(hidden,), (leaky, added, removed)]]


@pytest.mark.parametrize("plan", secret_plans())
@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "comments"])
def test_secret_values_never_shown(plan, fmt):
    out = all_formats(plan)[fmt]
    assert "hunter2" not in out
    assert "data.password" in out


def test_secret_lines():
    md = render.to_markdown(secret_plans()[1], marker=MARKER)
    assert "~ data.password: (secret value changed)" in md
    assert "+ data.token: (secret value)" in md
    doc = json.loads(render.to_json(secret_plans()[1]))
    assert all(f["old"] is None and f["new"] is None and f["secret"] for f in doc["changes"][0]["fields"])


# ---------------------------------------------------------------- special plans


def test_no_changes_is_one_line():
    plan = plan_of(unchanged=7)
    body = render.to_markdown(plan, marker=MARKER)
    assert body.splitlines()[1:] == ["### ✅ gitops plan for stack `prod` at `main` (`0123456`): no changes "
                                     "(7 objects already match)"]
    assert render.to_text(plan) == "Plan for stack prod at main (0123456): no changes; 7 objects unchanged.\n"
    assert render.summary(plan) == "no changes; 7 unchanged"


def test_problems_plan():
    plan = plan_of(problems=(Problem("app/web.yaml", 12, "spec.replicas: expected an integer"),
                             Problem("app/db.yaml", 3, "metadata.name is missing")))
    md = render.to_markdown(plan, marker=MARKER)
    assert "#### The manifests are invalid; nothing would be applied (2 problems)" in md
    assert "- `app/web.yaml:12: spec.replicas: expected an integer`\n- `app/db.yaml:3: metadata.name is missing`" in md
    assert md.splitlines()[1].startswith("### ❌")
    assert "app/web.yaml:12: spec.replicas: expected an integer" in render.to_text(plan)
    assert json.loads(render.to_json(plan))["problems"][0] == {"path": "app/web.yaml", "line": 12,
                                                               "message": "spec.replicas: expected an integer"}
    assert render.summary(plan) == "manifests invalid: 2 problems"


def test_problem_with_backticks_stays_one_code_span():
    md = render.to_markdown(plan_of(problems=(Problem("a.yaml", 1, "bad `x` and ``y``"),)), marker=MARKER)
    assert "- ``` a.yaml:1: bad `x` and ``y`` ```" in md


def test_error_plan():
    plan = Plan(stack="prod", ref="main", commit=None, error="engine failed:\n```\nboom")
    md = render.to_markdown(plan, marker=MARKER)
    assert "#### The preview failed; nothing would be applied" in md
    assert "````text\nengine failed:\n```\nboom\n````" in md
    assert "  boom" in render.to_text(plan)
    assert json.loads(render.to_json(plan))["error"] == "engine failed:\n```\nboom"
    assert render.summary(plan) == "preview failed: engine failed:"


# ---------------------------------------------------------------- escaping


@pytest.mark.parametrize("value,fence", [("plain", "```"), ("has ``` three", "````"), ("has ````` five", "``````")])
def test_diff_fence_outlasts_backticks_in_values(value, fence):
    md = render.to_markdown(plan_of(Change("ConfigMap/prod/c", Op.UPDATE,
                                           (FieldChange("data.k", "update", "a", value),))), marker=MARKER)
    block = re.search(r"\n(`{3,})diff\n(.*?)\n\1\n", md, re.S)
    assert block and block.group(1) == fence
    assert value in block.group(2)


def test_html_in_subjects_and_paths_is_escaped():
    md = render.to_markdown(plan_of(Change("X/prod/<b>", Op.UPDATE, (FieldChange("a<i>", "update", 1, 2),))),
                            marker=MARKER)
    assert "<code>X/prod/&lt;b&gt;</code> — a&lt;i&gt;" in md


@pytest.mark.parametrize("marker", ["", "a b", "x-->", "a--b", "new\nline"])
def test_bad_markers_refused(marker):
    with pytest.raises(ValueError):
        render.markdown_comments(mixed(), marker=marker, limit=COMMENT_LIMIT)


@pytest.mark.parametrize("body,part", [
    (f"<!-- gitops-preview:{MARKER} part 2/3 -->\nhi", 2),
    (f"<!-- gitops-preview:{MARKER}-eu part 1/1 -->\nhi", None),   # another stack
    (f"> <!-- gitops-preview:{MARKER} part 1/1 -->", None),         # a quote of ours
    (f"hello\n<!-- gitops-preview:{MARKER} part 1/1 -->", None),
    ("", None),
])
def test_part_of(body, part):
    assert render.part_of(body, MARKER) == part


# ---------------------------------------------------------------- splitting


def big_plan(n: int = 3000) -> Plan:
    ops = [Op.UPDATE, Op.CREATE, Op.DELETE, Op.REPLACE]
    changes = []
    for i in range(n):
        op = ops[i % 4]
        fields = tuple(FieldChange(f"data.key{j}", "update" if op != Op.CREATE else "add",
                                   None if op == Op.CREATE else f"old-{i}-{j}", f"new-value-{i}-{j}" * 3,
                                   replaces=op == Op.REPLACE and j == 0)
                       for j in range(4))
        changes.append(Change(f"ConfigMap/ns{i % 7}/object-{i:05d}", op, fields,
                              ("data.key0",) if op == Op.REPLACE else ()))
    return plan_of(*changes, unchanged=5)


def test_split_3000_objects():
    plan = big_plan()
    bodies = render.markdown_comments(plan, marker=MARKER, limit=COMMENT_LIMIT)
    n = len(bodies)
    assert n > 3
    assert all(len(b) <= 65_536 for b in bodies)
    assert "| 750 | 750 | **750** | **750** | 5 |" in bodies[0]
    assert all("| ➕ Create" not in b for b in bodies[1:])
    for i, body in enumerate(bodies, start=1):
        assert body.startswith(f"<!-- gitops-preview:{MARKER} part {i}/{n} -->\n")
        assert render.part_of(body, MARKER) == i
        if i > 1:
            assert f"— continued (part {i} of {n})" in body.splitlines()[1]
        assert ("Continued in the next comment" in body) == (i < n)
    joined = "\n".join(bodies)
    seen = Counter(re.findall(r"(?:`|<code>)(ConfigMap/[^`<]+)(?:`|</code>)", joined))
    assert seen == Counter(c.subject for c in plan.changes)  # each object exactly once
    assert "diff truncated" not in joined


def test_split_never_breaks_an_object():
    bodies = render.markdown_comments(big_plan(300), marker=MARKER, limit=8000)
    assert len(bodies) > 5 and all(len(b) <= 8000 for b in bodies)
    for body in bodies:
        assert body.count("<details") == body.count("</details>")
        assert body.count("```diff") * 2 == body.count("```")


def test_continued_group_repeats_its_heading():
    bodies = render.markdown_comments(big_plan(300), marker=MARKER, limit=8000)
    assert any("#### ✏️ Update (75), continued" in b for b in bodies[1:])


def test_order_is_kept_across_parts():
    plan = big_plan(200)
    joined = "\n".join(render.markdown_comments(plan, marker=MARKER, limit=6000))
    positions = [joined.index(f"`{c.subject}`") if c.op == Op.DELETE else joined.index(f"<code>{c.subject}</code>")
                 for c in render.ordered(plan)]
    assert positions == sorted(positions)


def test_small_plan_is_one_comment_equal_to_to_markdown():
    assert render.markdown_comments(mixed(), marker=MARKER, limit=COMMENT_LIMIT) == [
        render.to_markdown(mixed(), marker=MARKER)]


def test_deterministic():
    assert render.markdown_comments(big_plan(100), marker=MARKER, limit=5000) == \
        render.markdown_comments(big_plan(100), marker=MARKER, limit=5000)


def test_giant_object_is_folded():
    fields = tuple(FieldChange(f"data.key{j:05d}", "update", "x" * 40, "y" * 40) for j in range(3000))
    plan = plan_of(Change("ConfigMap/prod/giant", Op.UPDATE, fields),
                   Change("ConfigMap/prod/small", Op.UPDATE, (FieldChange("data.a", "update", 1, 2),)))
    bodies = render.markdown_comments(plan, marker=MARKER, limit=COMMENT_LIMIT)
    assert all(len(b) <= 65_536 for b in bodies)
    giant = next(b for b in bodies if "ConfigMap/prod/giant" in b)
    shown = len(re.findall(r"^\+ data\.key\d+", giant, re.M))
    assert 100 < shown < 3000
    assert f"_diff truncated: {3000 - shown} more fields_" in giant
    assert giant.count("```diff") == 1 and giant.count("</details>") == giant.count("<details")
    assert any("ConfigMap/prod/small" in b and "+ data.a: 2" in b for b in bodies)
    assert "| 0 | 2 | 0 | 0 | 0 |" in bodies[0]


def test_giant_single_value_is_cut():
    plan = plan_of(Change("ConfigMap/prod/blob", Op.CREATE, (FieldChange("data.blob", "add", new="z" * 200_000),)))
    [body] = render.markdown_comments(plan, marker=MARKER, limit=COMMENT_LIMIT)
    assert len(body) <= 65_536
    assert "_diff truncated: 1 more field_" in body and body.count("```") == 2


def test_giant_error_and_many_problems_fit():
    error_plan = Plan(stack="prod", ref="main", commit=None, error="x\n" * 100_000)
    bodies = render.markdown_comments(error_plan, marker=MARKER, limit=COMMENT_LIMIT)
    assert len(bodies) == 1 and len(bodies[0]) <= 65_536 and "error truncated" in bodies[0]
    problems = tuple(Problem(f"app/f{i}.yaml", i, "metadata.name is missing") for i in range(5000))
    bodies = render.markdown_comments(plan_of(problems=problems), marker=MARKER, limit=COMMENT_LIMIT)
    assert len(bodies) == 1 and len(bodies[0]) <= 65_536  # the first hundred say what is wrong
    assert bodies[0].count("metadata.name is missing") == 100 and "- and 4900 more" in bodies[0]
    text = render.to_text(plan_of(problems=problems))
    assert text.count("metadata.name is missing") == 100 and text.rstrip().endswith("and 4900 more")


def test_too_small_limit_refused():
    with pytest.raises(ValueError, match="too small"):
        render.markdown_comments(mixed(), marker=MARKER, limit=300)

"""A plan for people and tools: terminal text, a stable JSON document, and pull-request Markdown.

Pure: no I/O. Every format lists risky changes first (delete, replace, update, create, then by
subject) and never shows a secret field's value, even when the plan carries one by mistake.
Markdown comes as one body (`to_markdown`) or as several comment bodies that each fit a
provider's size limit (`markdown_comments`); each body starts with a hidden marker line so a
later run can find its own comments and edit them (`part_of`).
"""
from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import SHOWN_PROBLEMS
from .model import Change, FieldChange, Op, Plan

RISK_ORDER = (Op.DELETE, Op.REPLACE, Op.UPDATE, Op.CREATE)
COUNT_ORDER = (Op.CREATE, Op.UPDATE, Op.REPLACE, Op.DELETE)  # the order people read "2 to add, 1 to destroy" in

_ICON = {Op.DELETE: "🗑️", Op.REPLACE: "⚠️", Op.UPDATE: "✏️", Op.CREATE: "➕"}
_TEXT_SIGN = {Op.DELETE: "-", Op.REPLACE: "-/+", Op.UPDATE: "~", Op.CREATE: "+"}
_INLINE_MAX = 100  # longer structured values read better as an indented YAML block
_SUMMARY_PATHS = 3  # field paths named in a collapsed object's summary line
_HEX = re.compile(r"^[0-9a-fA-F]{7,64}$")
_MARKER = re.compile(r"<!-- gitops-preview:(\S+) part (\d+)/(\d+) -->")
# HTML comments may not contain "--" in GitHub's Markdown (CommonMark 0.29): the marker would show.
_MARKER_NAME = re.compile(r"^(?!.*--)[A-Za-z0-9._/:@+-]+$")


# ---------------------------------------------------------------- shared helpers


def ordered(plan: Plan) -> list[Change]:
    """The plan's changes, risky first, then by subject: every format uses this order."""
    return sorted(plan.changes, key=lambda c: (RISK_ORDER.index(c.op), c.subject))


def summary(plan: Plan) -> str:
    """One line, e.g. for a commit status: `2 to create, 1 to delete; 12 unchanged`."""
    if plan.error is not None:
        return "preview failed: " + (plan.error.strip().splitlines() or [""])[0]
    if plan.problems:
        count = len(plan.problems)
        return f"manifests invalid: {count} problem{'s' if count != 1 else ''}"
    counts = plan.counts
    parts = [f"{counts[op]} to {op.value}" for op in COUNT_ORDER if counts[op]]
    return f"{', '.join(parts) or 'no changes'}; {plan.unchanged} unchanged"


def replace_reasons(change: Change) -> tuple[str, ...]:
    """The fields that force a replace: the engine's list, else the fields marked as forcing it."""
    return tuple(change.replace_reasons) or tuple(f.path for f in sorted(change.fields, key=_field_key) if f.replaces)


def _replace_phrase(change: Change, code: Callable[[str], str]) -> str:
    reasons = replace_reasons(change)
    if not reasons:
        return "replaced (the engine named no field)"
    names = [code(r) for r in reasons]
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"replaced because {joined} {'is' if len(names) == 1 else 'are'} immutable"


def _where(plan: Plan, code: Callable[[str], str] = str) -> str:
    """`main (abc1234)`, or just `abc1234` when the ref is the commit itself."""
    if not plan.commit:
        return code(plan.ref)
    short = plan.commit[:7]
    if _HEX.match(plan.ref) and plan.commit.startswith(plan.ref.lower()):
        return code(short)
    return f"{code(plan.ref)} ({code(short)})"


def _field_key(f: FieldChange) -> str:
    return f.path


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _value_lines(sign: str, path: str, value: Any, note: str) -> list[str]:
    """`+ path: value`; a multi-line string or a long structure as an indented block under it."""
    if isinstance(value, str) and "\n" in value:
        return [f"{sign} {path}: |{note}", *(f"{sign}     {line}" for line in value.removesuffix("\n").split("\n"))]
    text = _json(value)
    if len(text) <= _INLINE_MAX or not isinstance(value, (dict, list)) or not value:
        return [f"{sign} {path}: {text}{note}"]
    block = yaml.safe_dump(value, sort_keys=True, default_flow_style=False, allow_unicode=True, width=10_000)
    return [f"{sign} {path}:{note}", *(f"{sign}     {line}" for line in block.rstrip("\n").split("\n"))]


def _text_diff(path: str, old: str, new: str, note: str) -> list[str]:
    """Line diff of a changed text value (a config file in a ConfigMap), with a little context."""
    lines = [f"~ {path}: |{note}"]
    for line in list(difflib.unified_diff(old.split("\n"), new.split("\n"), n=2, lineterm=""))[2:]:
        lines.append(line if line.startswith("@@") else f"{line[0]}     {line[1:]}")
    return lines


def field_lines(f: FieldChange) -> list[str]:
    """One field's diff lines (`- spec.replicas: 2` / `+ spec.replicas: 3`); secrets show no value."""
    note = "  # forces replacement" if f.replaces else ""
    if f.secret:
        sign, what = {"add": ("+", "secret value"), "delete": ("-", "secret value")}.get(
            f.kind, ("~", "secret value changed"))
        return [f"{sign} {f.path}: ({what}){note}"]
    if f.kind == "add":
        return _value_lines("+", f.path, f.new, note)
    if f.kind == "delete":
        return _value_lines("-", f.path, f.old, note)
    if isinstance(f.old, str) and isinstance(f.new, str) and ("\n" in f.old or "\n" in f.new):
        return _text_diff(f.path, f.old, f.new, note)
    return _value_lines("-", f.path, f.old, "") + _value_lines("+", f.path, f.new, note)


def _diff_lines(change: Change) -> list[list[str]]:
    if change.op == Op.DELETE:
        return []
    return [field_lines(f) for f in sorted(change.fields, key=_field_key)]


# ---------------------------------------------------------------- text


_ANSI = {"-": "\033[31m", "+": "\033[32m", "~": "\033[33m", "@": "\033[36m"}


def to_text(plan: Plan, *, color: bool = False) -> str:
    """The plan for a terminal, Terraform-like; `color` adds ANSI colours to the diff lines."""
    def paint(line: str) -> str:
        start = line.lstrip()[:1]
        return f"{_ANSI[start]}{line}\033[0m" if color and start in _ANSI else line

    head = f"Plan for stack {plan.stack} at {_where(plan)}"
    out: list[str] = []
    if plan.problems:
        out += [f"{head}: the manifests are invalid; nothing would be applied:",
                *(f"  {p.path}:{p.line}: {p.message}" for p in plan.problems[:SHOWN_PROBLEMS])]
        if len(plan.problems) > SHOWN_PROBLEMS:
            out.append(f"  and {len(plan.problems) - SHOWN_PROBLEMS} more")
    if plan.error is not None:
        out += [f"{head}: the preview failed; nothing would be applied:",
                *(f"  {line}" for line in plan.error.rstrip().splitlines())]
    if not plan.ok:
        return "\n".join(out) + "\n"
    if not plan.changes:
        return f"{head}: no changes; {plan.unchanged} object{'s' if plan.unchanged != 1 else ''} unchanged.\n"
    out += [f"{head}:", ""]
    for change in ordered(plan):
        title = f"{_TEXT_SIGN[change.op]:>3} {change.op.value:<8} {change.subject}"
        if change.op == Op.REPLACE:
            title += f"  ({_replace_phrase(change, str)})"
        out.append(paint(title))
        out += [paint(f"        {line}") for lines in _diff_lines(change) for line in lines]
    out += ["", f"Plan: {summary(plan)}."]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- JSON


def to_json(plan: Plan) -> str:
    """A stable document for tools. Secret fields carry `secret: true` and null values."""
    document = {
        "stack": plan.stack,
        "ref": plan.ref,
        "commit": plan.commit,
        "counts": {op.value: plan.counts[op] for op in COUNT_ORDER},
        "unchanged": plan.unchanged,
        "changes": [{
            "subject": c.subject,
            "op": c.op.value,
            "replace_reasons": list(replace_reasons(c)) if c.op == Op.REPLACE else [],
            "fields": [{
                "path": f.path, "kind": f.kind,
                "old": None if f.secret else f.old, "new": None if f.secret else f.new,
                "secret": f.secret, "replaces": f.replaces,
            } for f in sorted(c.fields, key=_field_key)],
        } for c in ordered(plan)],
        "problems": [{"path": p.path, "line": p.line, "message": p.message} for p in plan.problems],
        "error": plan.error,
    }
    return json.dumps(document, indent=2, ensure_ascii=False, default=str)


# ---------------------------------------------------------------- Markdown pieces


def code(text: str) -> str:
    """Inline code that survives any backticks in `text` (a longer backtick run around it)."""
    text = " ".join(text.splitlines())
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fenced(body: str, info: str = "") -> str:
    """A fenced block longer than any backtick run inside, so no value can close it early."""
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", body)), default=0) + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def _html_code(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


def _title(plan: Plan) -> str:
    icon = "📋" if plan.ok else "❌"
    return f"### {icon} gitops plan for stack {code(plan.stack)} at {_where(plan, code)}"


def _counts_table(plan: Plan) -> str:
    counts = plan.counts

    def cell(op: Op) -> str:  # destructive counts in bold, so they catch the eye
        return f"**{counts[op]}**" if counts[op] and op in (Op.DELETE, Op.REPLACE) else str(counts[op])

    head = " | ".join(f"{_ICON[op]} {op.value.capitalize()}" for op in COUNT_ORDER)
    return "\n".join([f"| {head} | Unchanged |", "|" + ":-:|" * (len(COUNT_ORDER) + 1),
                      f"| {' | '.join(cell(op) for op in COUNT_ORDER)} | {plan.unchanged} |"])


def _warning(plan: Plan) -> str | None:
    counts = plan.counts
    deletes, replaces = counts[Op.DELETE], counts[Op.REPLACE]
    if not deletes and not replaces:
        return None
    said = []
    if deletes:
        said.append(f"**deletes {deletes} object{'s' if deletes != 1 else ''}**")
    if replaces:
        said.append(f"**replaces {replaces}** (deleted, then created again)")
    return f"> [!WARNING]\n> This plan {' and '.join(said)}. They are listed first."


def _header(plan: Plan) -> str:
    """The first comment's top: the title and, for a plan with changes, the counts."""
    if plan.problems or plan.error is not None:
        return _title(plan)
    if not plan.changes:
        return (f"### ✅ gitops plan for stack {code(plan.stack)} at {_where(plan, code)}: no changes "
                f"({plan.unchanged} object{'s' if plan.unchanged != 1 else ''} already match)")
    parts = [_title(plan), _counts_table(plan)]
    warning = _warning(plan)
    return "\n\n".join([*parts, warning] if warning else parts)


@dataclass(frozen=True)
class _Block:
    """One unit of the Markdown that is never split between comments."""

    text: str
    group: str
    """Blocks of one group sit under one heading, repeated "(continued)" in a later comment."""
    heading: str
    first: bool
    tight: bool
    """A list item: joined to the previous item of its group by one newline, not a blank line."""
    fold: Callable[[int], str]
    """The block shortened to at most that many characters (only used for a giant block)."""


def _cut(text: str, budget: int, what: str) -> str:
    """Keep whole lines of `text` within `budget` characters, saying how much was left out."""
    if len(text) <= budget:
        return text
    note = f"\n… {what} truncated: {len(text)} characters, only the first shown"
    kept = text[:max(0, budget - len(note))]
    kept = kept.rsplit("\n", 1)[0] if "\n" in kept else kept
    return kept + note


def _summary_line(change: Change) -> str:
    """What a collapsed object shows: its subject, and why it is replaced or which fields change."""
    if change.op == Op.REPLACE:
        return f"{_html_code(change.subject)} — {_replace_phrase(change, _html_code)}"
    paths = [f.path for f in sorted(change.fields, key=_field_key)]
    if change.op != Op.UPDATE or not paths:
        return _html_code(change.subject)
    named = ", ".join(paths[:_SUMMARY_PATHS])
    if len(paths) > _SUMMARY_PATHS:
        named += f" +{len(paths) - _SUMMARY_PATHS} more"
    return f"{_html_code(change.subject)} — {html.escape(named)}"


def _change_block(change: Change, first: bool, count: int) -> _Block:
    heading = f"#### {_ICON[change.op]} {change.op.value.capitalize()} ({count})"
    if change.op == Op.DELETE:
        item = f"- {code(change.subject)}"
        return _Block(item, change.op.value, heading, first, True, lambda budget: item[:budget])
    diffs = _diff_lines(change)
    # One fence for every fold of this object, long enough for the whole diff.
    fence = fenced("\n".join(line for lines in diffs for line in lines)).split("\n", 1)[0]
    head = f"<details{' open' if change.op == Op.REPLACE else ''}><summary>{_summary_line(change)}</summary>"

    def render(shown: list[str], hidden: int) -> str:
        body = f"{fence}diff\n" + "\n".join(shown) + f"\n{fence}" if shown else ""
        if not diffs:
            body = "_The engine reported no field-level changes._"
        if hidden:
            body += f"\n\n_diff truncated: {hidden} more field{'s' if hidden != 1 else ''}_"
        return f"{head}\n\n{body}\n\n</details>"

    def fold(budget: int) -> str:
        # Whole fields while they fit; if not even the first does, the first field's top lines.
        room = budget - (len(render(["x"], len(diffs))) - 1)
        shown: list[str] = []
        whole = 0
        for lines in diffs:
            size = sum(len(line) + 1 for line in lines)
            if size > room:
                break
            shown += lines
            room -= size
            whole += 1
        if whole == 0 and diffs:
            for line in diffs[0]:
                if len(line) + 1 > room:
                    if room > 20:
                        shown.append(line[:room - 2] + "…")
                    break
                shown.append(line)
                room -= len(line) + 1
        return render(shown, len(diffs) - whole)

    full = render([line for lines in diffs for line in lines], 0)
    return _Block(full, change.op.value, heading, first, False, fold)


def _problem_blocks(plan: Plan) -> list[_Block]:
    heading = "#### The manifests are invalid; nothing would be applied"
    if len(plan.problems) > 1:
        heading += f" ({len(plan.problems)} problems)"
    blocks = []
    for i, p in enumerate(plan.problems[:SHOWN_PROBLEMS]):
        line = f"{p.path}:{p.line}: {p.message}"
        item = f"- {code(line)}"

        def fold(budget: int, line: str = line) -> str:
            return f"- {code(_cut(line, budget - 12, 'message'))}"
        blocks.append(_Block(item, "problems", heading, i == 0, True, fold))
    if len(plan.problems) > SHOWN_PROBLEMS:
        more = f"- and {len(plan.problems) - SHOWN_PROBLEMS} more"

        def unchanged(budget: int) -> str:
            return more
        blocks.append(_Block(more, "problems", heading, False, True, unchanged))
    return blocks


def _error_block(error: str) -> _Block:
    heading = "#### The preview failed; nothing would be applied"
    text = error.rstrip()
    fence_cost = len(fenced(text, "text")) - len(text)
    return _Block(fenced(text, "text"), "error", heading, True, False,
                  lambda budget: fenced(_cut(text, budget - fence_cost, "error"), "text"))


def _blocks(plan: Plan) -> list[_Block]:
    blocks = _problem_blocks(plan)
    if plan.error is not None:
        blocks.append(_error_block(plan.error))
    if plan.ok:
        previous: Op | None = None
        counts = plan.counts
        for change in ordered(plan):
            blocks.append(_change_block(change, first=change.op != previous, count=counts[change.op]))
            previous = change.op
    return blocks


# ---------------------------------------------------------------- Markdown bodies


def marker_line(marker: str, part: int, parts: int) -> str:
    """The hidden first line of every comment body: which stack, which part of how many."""
    if not _MARKER_NAME.match(marker):
        raise ValueError(f"comment marker {marker!r} must be letters, digits and ._/:@+- without '--'")
    return f"<!-- gitops-preview:{marker} part {part}/{parts} -->"


def part_of(body: str, marker: str) -> int | None:
    """The part number when `body` is one of our comments for `marker`, else None.

    Only a marker on the first line counts: a person quoting our comment is not our comment.
    """
    match = _MARKER.match(body.split("\n", 1)[0].strip())
    return int(match.group(2)) if match and match.group(1) == marker else None


def to_markdown(plan: Plan, *, marker: str) -> str:
    """The whole plan as one Markdown body, whatever its length (see `markdown_comments`)."""
    return markdown_comments(plan, marker=marker, limit=10**12)[0]


def markdown_comments(plan: Plan, *, marker: str, limit: int) -> list[str]:
    """The plan as comment bodies of at most `limit` characters each.

    The first carries the title and the counts; objects are never split between comments, and
    an object too big for a comment on its own has its diff folded with a note.
    """
    marker_line(marker, 1, 1)  # validate early
    header = _header(plan)
    cont_title = _title(plan) + " — continued"
    # Room for the parts' own lines, with the widest part numbers any plan could need.
    overhead = (len(marker_line(marker, 10**6, 10**6)) + len(cont_title) + len(" (part 1000000 of 1000000)")
                + len(_footer(10**6, 10**6)) + 8)
    budget = limit - overhead
    if budget < len(header) + 200:
        raise ValueError(f"comment limit {limit} is too small for this plan's heading")

    parts: list[list[str]] = [[header]]
    sizes = [len(header)]
    previous: _Block | None = None
    for block in _blocks(plan):
        has_blocks = len(parts[-1]) > 1
        piece = _place(block, previous, fresh=len(parts) > 1 and not has_blocks)
        if sizes[-1] + len(piece) > budget and has_blocks:
            parts.append([""])  # the continuation title is added once the count is known
            sizes.append(0)
            piece = _place(block, previous, True)
        if sizes[-1] + len(piece) > budget:  # alone in its comment and still too big
            lead = len(piece) - len(block.text)
            piece = piece[:lead] + block.fold(budget - sizes[-1] - lead)
        parts[-1].append(piece)
        sizes[-1] += len(piece)
        previous = block

    total = len(parts)
    bodies = []
    for i, pieces in enumerate(parts, start=1):
        head = pieces[0] if i == 1 else f"{cont_title} (part {i} of {total})"
        text = head + "".join(pieces[1:])
        if i < total:
            text += "\n\n" + _footer(i, total)
        bodies.append(f"{marker_line(marker, i, total)}\n{text}\n")
    return bodies


def _place(block: _Block, previous: _Block | None, fresh: bool) -> str:
    """The block with what goes before it: its group's heading when it opens a group or a comment."""
    if block.first or fresh:
        heading = block.heading + ("" if block.first else ", continued")
        return f"\n\n{heading}\n\n{block.text}"
    same_list = block.tight and previous is not None and previous.tight and previous.group == block.group
    return ("\n" if same_list else "\n\n") + block.text


def _footer(part: int, parts: int) -> str:
    return f"<sub>Continued in the next comment (part {part + 1} of {parts}).</sub>"

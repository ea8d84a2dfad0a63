"""Random and mutated manifests, for a few seconds: whatever the bytes, reading them ends in
documents or `path:line` problems, never an exception. Seeded: a failure names the seed and
case, and `FUZZ_SEED=<seed>` replays it."""
from __future__ import annotations

import json
import os
import random
import re
import time

from gitops.deep import recursion_room
from gitops.manifests import isolate
from gitops.manifests.limits import MAX_DEPTH
from gitops.manifests.load import load_documents

SEED = int(os.environ.get("FUZZ_SEED", "20261202"))
BUDGET_S = float(os.environ.get("FUZZ_SECONDS", "3"))
LOCATED = re.compile(r"^[^:]+:\d+: \S")

SCALARS = ["yes", "no", "y", "n", "on", "off", "~", "null", "", "=", "<<", "0755", "08", "0x1F", "0o17", "0b101",
           "1_000", "1:20", ".inf", "-.inf", ".nan", "1e400", "1e-400", "2001-12-14", "9" * 30, "9223372036854775808",
           "18446744073709551615", "-0.0", "1.", ".5_0", "'q'", '"\\u00e9"', '"\\ud800"', "|\n  block\n", ">-\n  f\n",
           "!!binary aGk=", "!!binary x", "!!int 1", "!!int x", "!!float 1", "!!str 1", "!foo x", "!!python/object x",
           "!!timestamp 2001-12-14", "!!null ''", "&a 1", "*a", "*missing", "x", "name", "a b", "- x", "[1, 2]",
           "{a: 1}", "{a: 1, a: 2}", "[[[]]]"]
KEYS = ["apiVersion", "kind", "metadata", "name", "namespace", "items", "data", "<<", "a", "a", "1", "1.5", "yes",
        "~", "? x", "[k]", "'q'", "!!binary aGk="]
TOKENS = ["[", "]", "{", "}", ":", ": ", "- ", "---\n", "...\n", "\n", "\t", " ", "#", "&a ", "*a", "<<: ", "!!",
          "%YAML 1.1\n", "\x00", "\ufeff", "\r\n", "'", '"', "?", ",", "|", ">", "\\", "\u2028", "\x85"]


def generate(rng: random.Random, depth: int = 0) -> str:
    """A YAML value: block or flow, with anchors, aliases, merges and tags."""
    roll = rng.random()
    if depth > 4 or roll < 0.35:
        return rng.choice(SCALARS).replace("\n", "\n" + "  " * (depth + 1))
    pad = "  " * depth
    if roll < 0.6:
        pairs = [f"{rng.choice(KEYS)}: {generate(rng, depth + 1)}" for _ in range(rng.randint(0, 4))]
        if rng.random() < 0.5:
            return "{" + ", ".join(p.replace("\n", " ") for p in pairs) + "}"
        return "\n" + "\n".join(pad + "  " + p for p in pairs) if pairs else "{}"
    items = [generate(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if rng.random() < 0.5:
        return "[" + ", ".join(i.replace("\n", " ") for i in items) + "]"
    return "\n" + "\n".join(f"{pad}- {i}" for i in items) if items else "[]"


def manifest(rng: random.Random) -> str:
    docs = []
    for _ in range(rng.randint(1, 3)):
        body = "".join(f"{key}: {generate(rng, 1)}\n" for key in rng.sample(KEYS, rng.randint(1, 5)))
        docs.append(f"apiVersion: v1\nkind: {rng.choice(['ConfigMap', 'List', 'X'])}\nmetadata:\n  name: n\n{body}")
    return rng.choice(["---\n", "--- # c\n", "\n---\n"]).join(docs)


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        where = rng.randint(0, len(out))
        roll = rng.random()
        if roll < 0.3:
            out[where:where] = rng.choice(TOKENS).encode()
        elif roll < 0.5 and out:
            del out[where:where + rng.randint(1, 8)]
        elif roll < 0.65 and out:
            out[min(where, len(out) - 1)] = rng.randrange(256)
        elif roll < 0.8:
            out[where:where] = out[max(0, where - 40):where] * rng.randint(1, 5)
        elif roll < 0.9:
            out = out[:where]
        else:
            out[where:where] = rng.choice([b"[" * 300, b"{a: " * 50, b"- " * 200, b"\xff\xfe", b"{\"a\": "])
    return bytes(out)


def cases(rng: random.Random):
    while True:
        text = manifest(rng)
        roll = rng.random()
        if roll < 0.15:
            yield "c.json", json.dumps(_jsonish(rng)).encode() if rng.random() < 0.5 else mutate(
                rng, json.dumps(_jsonish(rng)).encode())
        elif roll < 0.4:
            yield "c.yaml", text.encode()
        else:
            yield "c.yaml", mutate(rng, text.encode())


def _jsonish(rng: random.Random, depth: int = 0):
    if depth > 4 or rng.random() < 0.4:
        return rng.choice([1, 1.5, 10**30, -0.0, "s", "\ud800", None, True, 2**64])
    if rng.random() < 0.5:
        return {rng.choice(KEYS): _jsonish(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [_jsonish(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def check(path: str, docs, problems, label: str) -> None:
    for problem in problems:
        assert LOCATED.match(str(problem)) and problem.path == path and problem.line >= 1, (label, problem)
    with recursion_room(MAX_DEPTH + 100):
        for doc in docs:
            assert doc.path == path and doc.line >= 1, label
            json.dumps(doc.data, allow_nan=False)


def test_random_and_mutated_manifests_end_in_documents_or_problems():
    rng = random.Random(SEED)
    kept: dict[str, bytes] = {}
    started, count = time.monotonic(), 0
    for path, data in cases(rng):
        label = f"seed {SEED}, case {count}: {data[:200]!r}"
        try:
            docs, problems = load_documents(path, data)
        except Exception as e:  # the test's point: nothing escapes
            raise AssertionError(f"{label} raised {type(e).__name__}: {e}") from e
        check(path, docs, problems, label)
        if len(kept) < 300:
            kept[f"case{count:05d}.{path.rsplit('.', 1)[1]}"] = data
        count += 1
        if time.monotonic() - started > BUDGET_S:
            break
    assert count > 100, f"only {count} cases in {BUDGET_S} s"
    # The same cases as one commit, through the child process, agree with the in-process reading.
    docs, problems = isolate.load_isolated(kept, "", None)
    for path, data in kept.items():
        own_docs, own_problems = load_documents(path, data)
        assert [str(p) for p in problems if p.path == path] == [str(p) for p in own_problems], path
        with recursion_room(MAX_DEPTH + 100):
            assert [json.dumps(d.data) for d in docs if d.path == path] == [json.dumps(d.data) for d in own_docs]

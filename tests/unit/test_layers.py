"""Imports point down the data flow: each module imports only from its own layer or the ones
before it, so a change at the bottom never needs the top, and the package holds no test code."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gitops"

# From the bottom up: values and small helpers, settings, the source, manifests and the desired
# state, images, the Pulumi program, state backends and local tools, the engine, plans, the
# watcher, and the CLI on top.
LAYERS = (
    ("__init__", "errors", "deep", "model", "urls", "text", "procs", "paths", "http"),
    ("settings",),
    ("source",),
    ("manifests", "renderers", "desired", "render", "guard"),
    ("kube",),
    ("images",),
    ("resources", "intent", "program"),
    ("state", "local"),
    ("engine",),
    ("plan",),
    ("watch",),
    ("cli", "__main__"),
)


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else module
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"gitops.{top} is in no layer of {__name__}.LAYERS")


def imports(path: Path) -> list[tuple[int, str]]:
    module = "gitops." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            found += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, name) for line, name in found if name == "gitops" or name.startswith("gitops.")]


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_point_down(path):
    module = "gitops." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    own = layer_of(module)
    upward = [f"line {line}: {name}" for line, name in imports(path) if name != "gitops" and layer_of(name) > own]
    assert not upward, f"{path.relative_to(PACKAGE)} imports from above its layer: {upward}"


def test_every_module_is_in_a_layer_and_none_is_test_infrastructure():
    for path in MODULES:
        layer_of("gitops." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        assert "pytest" not in path.read_text(), f"{path} looks like test code"


def test_an_upward_import_is_caught(tmp_path, monkeypatch):
    fake = tmp_path / "gitops"
    (fake / "watch").mkdir(parents=True)
    (fake / "settings.py").write_text("from .local.cluster import default_root\nimport gitops.cli\n")
    (fake / "watch" / "loop.py").write_text("from ..engine import up\nfrom . import decide\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert [n for _, n in imports(fake / "settings.py")] == ["gitops.local.cluster", "gitops.cli"]
    assert layer_of("gitops.local.cluster") > layer_of("gitops.settings")
    assert [n for _, n in imports(fake / "watch" / "loop.py")] == ["gitops.engine", "gitops.watch.decide"]

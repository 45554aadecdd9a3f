"""The import graph of genbert: no circles, and every arrow runs down
(scripts -> recipes -> model / data / generation -> config / masks / io)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "genbert"
BOTTOM = {"genbert.config", "genbert.masks", "genbert.io"}
TOP = ("genbert.recipes", "genbert.cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """genbert modules imported anywhere in the file (function-level imports included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("genbert")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("genbert"):
                continue
            for a in node.names:  # `from . import masks` names a module
                out.add(f"{mod}.{a.name}" if (ROOT.parent / f"{mod}.{a.name}".replace(".", "/")).with_suffix(
                    ".py").exists() else mod)
    return {m for m in out if m != name and m != "genbert"}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in ROOT.rglob("*.py")}


def test_no_import_circles():
    g = graph()
    seen, on_path, cycles = set(), [], []

    def visit(m: str) -> None:
        if m in on_path:
            cycles.append(on_path[on_path.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        on_path.append(m)
        for n in sorted(g.get(m, ())):
            if n in g:
                visit(n)
        on_path.pop()

    for m in sorted(g):
        visit(m)
    assert not cycles, cycles


def test_arrows_run_down():
    g = graph()
    for m, deps in g.items():
        if not m.startswith(TOP):
            assert not any(d.startswith(TOP) for d in deps), (m, deps)
        if m in BOTTOM:
            assert deps <= BOTTOM, (m, deps)
    assert "genbert.model" not in g["genbert.convert"]  # the converter is pure: the model uses it

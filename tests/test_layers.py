"""The package's layers point one way: no two zoo modules import each other, directly or
through others, whether the import sits at a module's top or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

ZOO = Path(__file__).resolve().parents[1] / "zoo"


def _modules() -> dict[str, Path]:
    out = {}
    for path in ZOO.rglob("*.py"):
        parts = list(path.relative_to(ZOO.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the zoo modules it imports anywhere in its body (a submodule importing its own
    package is not counted: that is how a package exposes its parts)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            graph[mod] |= {n for n in names if n in mods and not f"{mod}.".startswith(f"{n}.")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def local_imports_without_reason() -> list[str]:
    """``file:line`` of every import of a zoo module inside a function that does not say, in a
    comment on its line, why it cannot sit at the module's top (a cycle, an optional
    dependency, start-up time)."""
    out = []
    for path in _modules().values():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for sub in ast.walk(node):
                own = (
                    isinstance(sub, ast.ImportFrom)
                    and sub.level == 0
                    and (sub.module or "").split(".")[0] == "zoo"
                ) or (
                    isinstance(sub, ast.Import)
                    and any(a.name.split(".")[0] == "zoo" for a in sub.names)
                )
                if own and "#" not in lines[sub.lineno - 1]:
                    out.append(f"{path.relative_to(ZOO.parent)}:{sub.lineno}")
    return sorted(set(out))


def test_zoo_modules_import_each_other_at_the_top() -> None:
    assert local_imports_without_reason() == []


def test_no_import_cycle_among_zoo_modules() -> None:
    graph = import_graph()
    assert "zoo.evaluation" in graph and "zoo.pretrained" in graph["zoo.evaluation"]
    assert cycles(graph) == []

"""The dependency rule of ``src/aees``, checked on the source with ``ast`` (nothing is imported).

* the library (the top-level modules ``aees.<module>`` and ``aees.integrations``) imports only
  the library;
* ``aees.console``: the standard library only; ``aees.results``: ``aees.console`` (and, lazily
  inside the hardware probe, torch -- a third-party import, not checked here);
* ``aees.runner``: library, results, console; ``aees.sweep``: runner, results, console, library;
  ``aees.reporting``: results and console only; only ``aees.cli`` imports across
  runner / sweep / reporting;
* no module imports a ``_private`` name of another module (``from m import _x`` or ``m._x`` on
  an imported module);
* no import cycles (imports inside functions count).

Every violation is printed as ``a -> b`` (with what was wrong) and fails the test.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Which groups a module of each group may import (besides its own group).
ALLOWED = {
    "library": {"library"},
    "console": set(),
    "results": {"console"},
    "runner": {"library", "results", "console"},
    "sweep": {"runner", "results", "console", "library"},
    "reporting": {"results", "console"},
    "cli": {"library", "console", "results", "runner", "sweep", "reporting"},
}


def modules(root: Path = SRC) -> dict[str, Path]:
    """``dotted name -> file`` of every module under ``root/aees``."""
    found = {}
    for path in sorted((root / "aees").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def group(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "integrations":
        return "library"
    if parts[1] in ALLOWED and parts[1] != "library":
        return parts[1]
    return "library"  # a top-level library module (aees.episode, aees.types, ...)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(module: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, str | None]]:
    """``(imported module, private name or None)`` for every ``aees`` import of ``module``,
    anywhere in the file (function bodies included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    aliases: dict[str, str] = {}  # local name -> aees module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "aees" or alias.name.startswith("aees."):
                    yield alias.name, None
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            if target != "aees" and not target.startswith("aees."):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:  # from aees.runner import engine
                    yield sub, None
                    aliases[alias.asname or alias.name] = sub
                else:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    yield target, alias.name if private else None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            yield aliases[node.value.id], node.attr


def graph(root: Path = SRC) -> tuple[dict[str, set[str]], list[str]]:
    """The module import graph and every rule violation (``"a -> b (why)"``)."""
    known = modules(root)
    edges: dict[str, set[str]] = {m: set() for m in known}
    violations: list[str] = []
    for module, path in known.items():
        for target, private in imports(module, path, known):
            if target not in known:
                # ``from aees.x import Name``: the edge goes to aees.x (a package: its __init__)
                target = target if target in known else target.rsplit(".", 1)[0]
            if target == module:
                continue
            edges[module].add(target)
            if private is not None:
                violations.append(f"{module} -> {target} (private name {private})")
            src_group, dst_group = group(module), group(target)
            if target == "aees" and src_group != "library":
                # ``from aees import AEES``: the library's public face
                dst_group = "library"
            if dst_group != src_group and dst_group not in ALLOWED[src_group]:
                violations.append(f"{module} -> {target} ({src_group} may not import {dst_group})")
    for component in cycles(edges):
        if len(component) > 1:
            violations.append(" -> ".join([*component, component[0]]) + " (import cycle)")
    return edges, violations


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each sorted; sizes 1 included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_dependency_rule() -> None:
    _, violations = graph()
    for line in violations:
        print(line)
    assert not violations, "\n".join(violations)


def test_console_and_results_use_the_standard_library_only() -> None:
    """``aees.console`` imports nothing of the project; ``aees.results`` no third-party module
    at module level (torch only inside the hardware probe)."""
    import sys

    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    bad = []
    for module, path in modules().items():
        if group(module) not in ("console", "results"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top != "aees":
                    bad.append(f"{module} -> {name} (not the standard library)")
    for line in bad:
        print(line)
    assert not bad, "\n".join(bad)


def test_the_check_catches_a_bad_import(tmp_path: Path) -> None:
    """The rule fails on a reporting -> runner import, a private name and a cycle."""
    pkg = tmp_path / "aees"
    (pkg / "reporting").mkdir(parents=True)
    (pkg / "runner").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "reporting" / "__init__.py").write_text("")
    (pkg / "runner" / "__init__.py").write_text("")
    (pkg / "reporting" / "a.py").write_text("from aees.runner.engine import run\n")
    (pkg / "runner" / "engine.py").write_text("def run():\n    from aees.runner.b import _helper\n")
    (pkg / "runner" / "b.py").write_text("import aees.runner.engine\n")
    _, violations = graph(tmp_path)
    assert "aees.reporting.a -> aees.runner.engine (reporting may not import runner)" in violations
    assert "aees.runner.engine -> aees.runner.b (private name _helper)" in violations
    assert any(v.endswith("(import cycle)") for v in violations)

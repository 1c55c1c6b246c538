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
* no import cycles (imports inside functions count);
* no module over :data:`MAX_MODULE_LINES` lines (issue 20: a module one can read at once), and no
  function over :data:`MAX_FUNCTION_LINES` lines unless a comment right above it says why;
* no task list outside the task registry: no module outside ``aees/runner/tasks/`` holds a
  collection literal (list, tuple, set, dict keys) naming two or more registered tasks, or binds
  a name ending in ``TASKS`` to task names (``CPU_TASKS = frozenset({"digits"})``), so adding
  a task touches its own file and its registration only (the results package's table of the
  thesis's legacy results, :data:`LEGACY_TASK_TABLE`, is the one exception).

Every violation is printed (``a -> b`` with what was wrong, or the module and why) and fails the
test. The rules read the source with ``ast`` (only the check that :data:`TASK_NAMES` is the
registry's imports a module of the project), so the file runs alone in a few seconds:
``pytest -m architecture`` or ``pytest tests/test_architecture.py``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.architecture

SRC = Path(__file__).resolve().parents[1] / "src"

#: The longest module allowed, in lines (issue 20 step 3: "no module over ~600 lines").
MAX_MODULE_LINES = 600
#: Modules allowed over the limit, each with the reason (none since issue 20 split them); the
#: test fails for any other long module.
OVERSIZED_FOR_NOW: dict[str, str] = {}
#: The longest function allowed without a reason, in lines (decorators and signature included).
MAX_FUNCTION_LINES = 80
#: Long functions allowed without a reason next to them (``module:qualified name``: none).
LONG_FUNCTIONS_FOR_NOW: dict[str, str] = {}
#: The registered task names (``aees.runner.tasks.task_names()``; test_task_names_are_registered
#: keeps the two equal).
TASK_NAMES = frozenset({"cifar100", "digits", "sst2", "agnews", "image", "text"})
#: Modules allowed to list tasks outside the registry (none: the facts live in the task records).
TASK_LISTS_FOR_NOW: dict[str, str] = {}
#: Where the task registry lives: task lists are allowed only under it.
TASK_REGISTRY = "aees/runner/tasks/"
#: The one documented table of the thesis's task and optimizer names for results written before
#: a result carried its report family and labels (docs/results-schema.md, contract B).
LEGACY_TASK_TABLE = "aees/results/legacy.py"

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


def long_modules(root: Path = SRC, allowed: dict[str, str] | None = None) -> list[str]:
    """``"aees/x.py: N lines (over M)"`` for every module over :data:`MAX_MODULE_LINES` that
    ``allowed`` (default :data:`OVERSIZED_FOR_NOW`) does not excuse."""
    allowed = OVERSIZED_FOR_NOW if allowed is None else allowed
    out = []
    for path in sorted((root / "aees").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES and rel not in allowed:
            out.append(f"{rel}: {lines} lines (over {MAX_MODULE_LINES}; split it by concern)")
    return out


def _named_tasks(node: ast.AST) -> set[str]:
    """The task names among the string constants anywhere in ``node``."""
    return {
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and n.value in TASK_NAMES
    }


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """``(qualified name, node)`` of every function and method, nested ones included."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, Any]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + child.name, child
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def long_functions(root: Path = SRC, allowed: dict[str, str] | None = None) -> list[str]:
    """``"aees/x.py:NAME: N lines ..."`` for every function over :data:`MAX_FUNCTION_LINES`
    lines (decorators included) with no ``#`` comment on the line right above it and not in
    ``allowed`` (default :data:`LONG_FUNCTIONS_FOR_NOW`)."""
    allowed = LONG_FUNCTIONS_FOR_NOW if allowed is None else allowed
    out = []
    for path in sorted((root / "aees").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for name, node in _functions(ast.parse(text, filename=str(path))):
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            length = (node.end_lineno or node.lineno) - first + 1
            if length <= MAX_FUNCTION_LINES or f"{rel}:{name}" in allowed:
                continue
            above = lines[first - 2].strip() if first >= 2 else ""
            if not above.startswith("#"):
                out.append(
                    f"{rel}:{name}: {length} lines (over {MAX_FUNCTION_LINES}; split it, or say "
                    "why in a comment right above it)"
                )
    return out


def task_lists(root: Path = SRC, allowed: dict[str, str] | None = None) -> list[str]:
    """``"aees/x.py:LINE names ..."`` for every collection literal (list, tuple, set, dict keys)
    naming two or more of :data:`TASK_NAMES`, and every name ending in ``TASKS`` bound to task
    names, outside :data:`TASK_REGISTRY`, :data:`LEGACY_TASK_TABLE` and ``allowed`` (default
    :data:`TASK_LISTS_FOR_NOW`), anywhere in a module (function bodies included)."""
    allowed = TASK_LISTS_FOR_NOW if allowed is None else allowed
    out: list[tuple[str, int, str]] = []
    for path in sorted((root / "aees").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(TASK_REGISTRY) or rel == LEGACY_TASK_TABLE or rel in allowed:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                named = _named_tasks(node.value)
                if named and any(
                    isinstance(t, ast.Name) and t.id.upper().endswith("TASKS") for t in targets
                ):
                    out.append((rel, node.lineno, str(sorted(named))))
                continue
            if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                items: list[ast.expr | None] = list(node.elts)
            elif isinstance(node, ast.Dict):
                items = list(node.keys)
            else:
                continue
            names = {
                item.value
                for item in items
                if isinstance(item, ast.Constant) and item.value in TASK_NAMES
            }
            if len(names) >= 2:
                out.append((rel, node.lineno, str(sorted(names))))
    return [
        f"{rel}:{line} names the tasks {names} (a task list outside the registry: read the "
        "fact from the task's record instead)"
        for rel, line, names in sorted(set(out))
    ]


def test_no_module_over_the_size_limit() -> None:
    found = long_modules()
    for line in found:
        print(line)
    assert not found, "\n".join(found)


def test_no_long_function_without_a_reason() -> None:
    found = long_functions()
    for line in found:
        print(line)
    assert not found, "\n".join(found)


def test_no_task_list_outside_the_registry() -> None:
    found = task_lists()
    for line in found:
        print(line)
    assert not found, "\n".join(found)


def test_the_size_and_task_list_checks_catch_a_bad_module(tmp_path: Path) -> None:
    """A long module, task names listed in a sweep module and inside a reporting function, and a
    ``*_TASKS`` name bound to one task are each reported once; one task name in a tuple, and the
    same lists in the registry and in the legacy table, are not."""
    (tmp_path / "aees" / "runner" / "tasks").mkdir(parents=True)
    (tmp_path / "aees" / "sweep").mkdir()
    (tmp_path / "aees" / "reporting").mkdir()
    (tmp_path / "aees" / "results").mkdir()
    (tmp_path / "aees" / "big.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    (tmp_path / "aees" / "small.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    (tmp_path / "aees" / "sweep" / "plan.py").write_text(
        'CPU_TASKS = frozenset({"digits"})\nSTEPS = ("digits",)\nPAIR = ["text", "image"]\n'
    )
    (tmp_path / "aees" / "reporting" / "runs.py").write_text(
        'def family(task):\n    return "nlp" if task in ("sst2", "agnews") else "cifar"\n'
        'LABELS = {"cifar100": "CIFAR-100", "image": "Images"}\n'
        'ONE = ("digits", "mnist")\n'
    )
    (tmp_path / "aees" / "runner" / "tasks" / "__init__.py").write_text(
        'TASKS = {"digits": "a:B", "sst2": "c:D"}\n'
    )
    (tmp_path / "aees" / "results" / "legacy.py").write_text('ORDER = ("cifar100", "digits")\n')

    assert long_modules(tmp_path, allowed={}) == [
        f"aees/big.py: {MAX_MODULE_LINES + 1} lines (over {MAX_MODULE_LINES}; split it by concern)"
    ]
    assert long_modules(tmp_path, allowed={"aees/big.py": "being split"}) == []
    body = "    x = 1\n" * MAX_FUNCTION_LINES
    (tmp_path / "aees" / "funcs.py").write_text(
        f"class C:\n    def long(self):\n{'    ' + body.replace(chr(10), chr(10) + '    ')}\n"
        f"# a reason\ndef explained():\n{body}\n"
        f"def fits():\n{body[: -len('    x = 1' + chr(10))]}\n"
    )
    assert long_functions(tmp_path, allowed={}) == [
        f"aees/funcs.py:C.long: {MAX_FUNCTION_LINES + 1} lines (over {MAX_FUNCTION_LINES}; "
        "split it, or say why in a comment right above it)"
    ]
    assert long_functions(tmp_path, allowed={"aees/funcs.py:C.long": "being split"}) == []
    found = task_lists(tmp_path, allowed={})
    assert [line.split(" names")[0] for line in found] == [
        "aees/reporting/runs.py:2",
        "aees/reporting/runs.py:3",
        "aees/sweep/plan.py:1",
        "aees/sweep/plan.py:3",
    ]
    assert "['agnews', 'sst2']" in found[0]
    assert "['digits']" in found[2]
    assert task_lists(tmp_path, allowed={"aees/sweep/plan.py": "moving"}) == found[:2]


def test_task_names_are_the_registered_tasks() -> None:
    """:data:`TASK_NAMES` is what the registry registers (this test imports the registry, so
    it is the one in this file that loads torch)."""
    from aees.runner.tasks import task_names

    assert set(task_names()) == TASK_NAMES

"""Static structure checks over the library's source (deba_core/, strategies/, adapters/).

* Layering: the subpackages of ``deba`` form an order, ``deba.errors``/``deba.registry`` <
  ``deba.profiles`` < ``deba.signals`` < ``deba.control`` < ``deba.training`` < ``deba.app``, and
  each imports only from its own layer or those before it. ``deba.strategies`` and
  ``deba.adapters`` may import anything except ``deba.app`` (and only ``deba.app`` and the leaves
  may import them). ``deba/__init__.py``, ``deba/__main__.py``, ``deba/testing.py`` and the public
  namespaces ``deba/policies.py`` and ``deba/collectors.py`` are leaves: they may import from any
  subpackage (not from ``deba.app``, except ``deba`` and ``deba.__main__``) and nothing in the
  library imports them (``deba.app``, a user of the library, may). Function-level imports count too.
* No import cycle between modules, over every import that can run: at module level *and* inside
  function bodies (a function-level import is a dependency all the same; it only runs later). Only
  imports under ``if TYPE_CHECKING:`` are left out: they never run.

Everything is read with :mod:`ast` (the whole tree: every function, method and class body);
nothing is imported.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: source folder -> the import package it becomes (mirrors setup.py's ROOTS)
FOLDERS = {"deba_core": "deba", "strategies": "deba.strategies", "adapters": "deba.adapters"}

#: layer of each core subpackage; a module may import from its own layer or a lower one
CORE_LAYERS = {
    "deba.errors": 0,
    "deba.registry": 0,
    "deba.profiles": 1,
    "deba.signals": 2,
    "deba.control": 3,
    "deba.training": 4,
    "deba.app": 6,
}
PLUGIN_LAYER = 5  # deba.strategies, deba.adapters: above training, below app
PLUGINS = ("deba.strategies", "deba.adapters")
LEAVES = ("deba", "deba.__main__", "deba.testing", "deba.policies", "deba.collectors")
#: the leaves that are public namespaces of names; ``deba.app`` may use them like any user
PUBLIC = ("deba", "deba.policies", "deba.collectors")

#: when an import statement runs: with its module, when a function containing it is called, never
ON_IMPORT, IN_FUNCTION, TYPE_ONLY = "on import", "in a function", "type checking only"


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported library module (the most specific one that exists)
    file: str  # path relative to the repository root
    line: int
    when: str  # ON_IMPORT, IN_FUNCTION or TYPE_ONLY

    @property
    def can_run(self) -> bool:
        return self.when != TYPE_ONLY

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def _source_files() -> dict[str, Path]:
    """Module name -> file, for every .py file under the three folders."""
    modules = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports_in(tree: ast.AST):
    """Yield (node, when) for every import statement in the whole tree, at any depth.

    ``when`` is ON_IMPORT for a statement that runs with its module, IN_FUNCTION for one inside a
    function or lambda body (at any depth, methods included), TYPE_ONLY under ``if TYPE_CHECKING:``.
    """

    def visit(node: ast.AST, when: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, when
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from visit(child, IN_FUNCTION if when == ON_IMPORT else when)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), TYPE_ONLY)
                for stmt in child.orelse:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), when)
            else:
                yield from visit(child, when)

    yield from visit(tree, ON_IMPORT)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of dotted ``name`` that is a library module, or None outside the library."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def collect_imports() -> tuple[dict[str, Path], list[Import]]:
    modules = _source_files()
    found = []
    for module, path in modules.items():
        rel = str(path.relative_to(ROOT))
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for node, when in _imports_in(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                # `from pkg import sub` imports the submodule when there is one, else names in pkg
                names = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem
                         for alias in node.names if alias.name != "*"] or [stem]
            for name in names:
                if name != "deba" and not name.startswith("deba."):
                    continue
                target = _resolve(name, modules)
                if target is not None and target != module:
                    found.append(Import(module, target, rel, node.lineno, when))
    return modules, found


def _group(module: str) -> str:
    """The subpackage a module belongs to: a CORE_LAYERS key, a PLUGINS entry, or a leaf name."""
    if module in LEAVES:
        return module
    for group in (*PLUGINS, *CORE_LAYERS):
        if module == group or module.startswith(group + "."):
            return group
    return module  # an unknown top-level module: treated like a leaf-less group of its own


def _allowed(source: str, target: str) -> str | None:
    """None if ``source`` may import ``target``; otherwise why not."""
    src, dst = _group(source), _group(target)
    if src == dst:
        return None
    if dst == "deba.app" and src != "deba.app" and src not in ("deba", "deba.__main__"):
        return "only deba.app itself, deba/__init__.py and deba/__main__.py may import deba.app"
    if src in LEAVES:
        return None
    if src == "deba.app" and dst in PUBLIC:
        return None  # the application is a user of the library: it may use the public names
    if dst in LEAVES:
        return f"{dst} is a leaf; library modules must not import it"
    if src in PLUGINS:
        return None
    src_layer = CORE_LAYERS.get(src)
    dst_layer = PLUGIN_LAYER if dst in PLUGINS else CORE_LAYERS.get(dst)
    if src_layer is None or dst_layer is None:
        return f"{src} / {dst} is not a known subpackage of deba"
    if dst_layer > src_layer:
        return f"{src} (layer {src_layer}) may not import from {dst} (layer {dst_layer})"
    return None


def layering_violations() -> list[str]:
    _, imports = collect_imports()
    out = []
    for imp in imports:
        why = _allowed(imp.source, imp.target)
        if why:
            out.append(f"{imp.where()}: {imp.source} imports {imp.target} -- {why}")
    return sorted(set(out))


def import_graph(modules: dict[str, Path], imports: list[Import]) -> dict[str, set[str]]:
    """Module -> the library modules it imports, at module level or in a function (not TYPE_ONLY)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if imp.can_run:
            graph[imp.source].add(imp.target)
    return graph


def import_cycles() -> list[list[str]]:
    """Strongly connected components (size > 1) of :func:`import_graph`."""
    modules, imports = collect_imports()
    return strongly_connected(import_graph(modules, imports))


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively; the components with more than one member, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return sorted(components)


# -- the tests ----------------------------------------------------------------------------------


def test_the_source_is_found():
    modules = _source_files()
    for name in ("deba", "deba.errors", "deba.registry", "deba.app.cli", "deba.strategies", "deba.adapters"):
        assert name in modules, name
    assert all(_group(m) in (*CORE_LAYERS, *PLUGINS, *LEAVES) for m in modules), \
        sorted(m for m in modules if _group(m) not in (*CORE_LAYERS, *PLUGINS, *LEAVES))


def test_subpackages_import_only_from_layers_below():
    violations = layering_violations()
    assert not violations, "layering violations:\n" + "\n".join(violations)


def test_no_import_cycle_between_modules():
    _, imports = collect_imports()
    cycles = import_cycles()
    lines = []
    for component in cycles:
        members = set(component)
        edges = sorted(f"  {i.where()}: {i.source} -> {i.target} ({i.when})" for i in imports
                       if i.can_run and i.source in members and i.target in members)
        lines.append(" <-> ".join(component) + "\n" + "\n".join(edges))
    assert not cycles, "import cycles (module-level and function-level imports):\n" + "\n".join(lines)


# -- the checker checks itself on small synthetic cases ------------------------------------------


def test_the_rules_on_examples():
    assert _allowed("deba.training.fit", "deba.control.scheduler") is None
    assert _allowed("deba.profiles.schema", "deba.errors") is None
    assert _allowed("deba.control.policy", "deba.training.config") is not None
    assert _allowed("deba.errors", "deba.profiles") is not None
    assert _allowed("deba.training.fit", "deba.app.cli") is not None
    assert _allowed("deba.strategies.learned", "deba.training.fit") is None
    assert _allowed("deba.adapters.torch", "deba.app.data") is not None
    assert _allowed("deba.training.fit", "deba.strategies.learned") is not None
    assert _allowed("deba.app.commands.run", "deba.adapters.torch") is None
    assert _allowed("deba", "deba.app.cli") is None
    assert _allowed("deba.__main__", "deba.app.cli") is None
    assert _allowed("deba.testing", "deba.app.cli") is not None
    assert _allowed("deba.testing", "deba.training.fit") is None
    assert _allowed("deba.training.fit", "deba") is not None
    assert _allowed("deba.policies", "deba.control.goodput") is None
    assert _allowed("deba.app.commands.run", "deba.policies") is None
    assert _allowed("deba.training.fit", "deba.policies") is not None
    assert _allowed("deba.control.scheduler", "deba.collectors") is not None


def test_cycle_finder_on_examples():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d", "f"}, "f": {"e"}, "g": {"g"}}
    assert strongly_connected(graph) == [["a", "b", "c"], ["e", "f"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_import_walker_on_examples():
    tree = ast.parse(
        "import deba.a\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import deba.b\n"
        "def f():\n    import deba.c\n"
        "class K:\n    def m(self):\n        from deba import d\n"
        "try:\n    import deba.e\nexcept ImportError:\n    pass\n"
        "class L:\n    x = [lambda: __import__('os') for _ in ()]\n"
        "    def n(self):\n        def inner():\n            from deba import f\n"
        "        if TYPE_CHECKING:\n            import deba.g\n"
    )
    seen = {(n.names[0].name if isinstance(n, ast.Import) else n.module + "." + n.names[0].name): when
            for n, when in _imports_in(tree)}
    assert seen == {"deba.a": ON_IMPORT, "typing.TYPE_CHECKING": ON_IMPORT, "deba.b": TYPE_ONLY,
                    "deba.c": IN_FUNCTION, "deba.d": IN_FUNCTION, "deba.e": ON_IMPORT,
                    "deba.f": IN_FUNCTION, "deba.g": TYPE_ONLY}


def test_a_circle_through_a_function_level_import_is_a_cycle():
    """The two circles the checker once missed: each went round through an import in a function."""
    modules = {name: Path(name) for name in ("deba.profiles.detection", "deba.profiles.loading", "deba.typed")}
    imports = [Import("deba.profiles.detection", "deba.profiles.loading", "d.py", 1, IN_FUNCTION),
               Import("deba.profiles.loading", "deba.profiles.detection", "l.py", 1, IN_FUNCTION),
               Import("deba.typed", "deba.profiles.loading", "t.py", 1, ON_IMPORT),
               Import("deba.profiles.loading", "deba.typed", "l.py", 2, TYPE_ONLY)]
    graph = import_graph(modules, imports)
    assert strongly_connected(graph) == [["deba.profiles.detection", "deba.profiles.loading"]]

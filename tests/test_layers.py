"""The layout's rules, read statically from the source (``ast``): dependencies point one way and no cycles.

- the numerics core (everything outside ``torch``, ``cli``, ``report``, ``plotting``) imports no framework and
  none of the layers built on it;
- the CLI, the report, the plotting and the PyTorch adapter import only public modules of the other packages (no
  ``varprop._x``, no ``varprop.torch._x``, no ``varprop.gaussian._x``), so that they show what a user can do (a
  layer's own private modules are its own business);
- the import graph of the core and of those layers has no cycle, counting every import, also the ones inside
  functions (a function-level import must not be what keeps a cycle apart); only ``if TYPE_CHECKING:`` imports,
  which never run, are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import varprop

PACKAGE = Path(varprop.__file__).resolve().parent
LAYERS = ("torch", "cli", "report", "plotting")
FRAMEWORKS = ("torch", "matplotlib", "transformers")
# Core modules allowed a framework import, and why.
OPTIONAL_FRAMEWORK = {
    # the live rows of torch.nn.init.calculate_gain beside the exact gains, skipped when torch is missing
    ("varprop.literature._reproduce", "torch"),
}


def _module_name(path: Path) -> str:
    parts = ("varprop", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` (imports for the type checker only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for other in node.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(name: str) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in module ``name`` (``from . import x`` gives ``pkg.x`` if a module)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                child = f"{target}.{alias.name}"
                yield (child if child in MODULES else target), node.lineno


def _layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def _is_public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def test_the_core_imports_no_framework_and_no_layer() -> None:
    found = []
    for name in MODULES:
        if _layer(name) is not None or name == "varprop.__main__":  # python -m varprop: the CLI's entry point
            continue
        for target, line in _imports(name):
            framework = target.split(".")[0]
            if (framework in FRAMEWORKS and (name, framework) not in OPTIONAL_FRAMEWORK) or (
                target.startswith("varprop.") and _layer(target)
            ):
                found.append(f"{name}:{line} imports {target}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("layer", ["cli", "report", "plotting", "torch"])
def test_cli_report_plotting_and_the_adapter_import_only_public_modules(layer: str) -> None:
    found = []
    for name in MODULES:
        if _layer(name) != layer:
            continue
        for target, line in _imports(name):
            own = target.startswith(f"varprop.{layer}.") or target == f"varprop.{layer}"
            if target.startswith("varprop") and not own and not _is_public(target):
                found.append(f"{name}:{line} imports {target}")
    assert not found, "\n".join(dict.fromkeys(found))  # one line per import statement


def test_no_import_cycle_outside_the_torch_adapter() -> None:
    graph = {
        name: {target for target, _ in _imports(name) if target in MODULES and _layer(target) != "torch"}
        for name in MODULES
        if _layer(name) != "torch"
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            pytest.fail("import cycle: " + " -> ".join(cycle))


def _core_package(name: str) -> str | None:
    """The core package holding module ``name`` (``varprop.gaussian._engine`` and ``varprop.gaussian`` give
    ``gaussian``); ``None`` for the layers and for the root's own modules (``_errors``, ...: below every package)."""
    parts = name.split(".")
    if len(parts) < 2 or _layer(name) is not None or (len(parts) == 2 and MODULES[name].name != "__init__.py"):
        return None
    return parts[1]


def test_core_packages_depend_one_way() -> None:
    """No cycle among the core's packages (``activations``, ``gaussian``, ``dynamics``, ...), counting
    ``varprop.a.x`` -> ``varprop.b.y`` as ``a`` -> ``b``. Importing any submodule runs its package's
    ``__init__``, so a cycle of packages is a cycle at run time even where the modules form none (before issue 9:
    ``activations.expression`` imported ``moments._singular``, whose package imported the engine, which imported
    ``activations._registry``; the engine dodged it with a function-level import)."""
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        package = _core_package(name)
        if package is None:
            continue
        graph.setdefault(package, set())
        for target, _ in _imports(name):
            other = _core_package(target) if target in MODULES else None
            if other is not None and other != package:
                graph[package].add(other)
    order: list[str] = []
    while graph:
        leaves = sorted(p for p in graph if not graph[p] - set(order))
        assert leaves, f"cycle among core packages: {graph}"
        order += leaves
        for leaf in leaves:
            del graph[leaf]
    assert order.index("activations") < order.index("gaussian") < order.index("dynamics"), order

"""The layout of ``src/varprop``: no import cycles (function-level imports included), and the adapter's subpackages
depend on each other in one direction.

The graph is built from the source (``ast``), not by importing it: every ``import`` and ``from ... import`` of a
``varprop`` module anywhere in a file (module level, inside functions, under ``if TYPE_CHECKING:``) is an edge. An
import that is moved into a function to dodge a cycle is still an edge here, so the cycle still fails the test.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "varprop"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imported(path: Path, name: str, modules: dict[str, Path]) -> Iterator[str]:
    """The ``varprop`` modules that ``path`` (module ``name``) imports, wherever in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target not in modules:
                continue
            submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules]
            yield from submodules
            if len(submodules) < len(node.names):  # names defined in the package or module itself
                yield target


def import_graph() -> dict[str, set[str]]:
    """Module name -> the ``varprop`` modules it imports."""
    modules = _modules()
    return {name: set(_imported(path, name, modules)) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or ``None`` (depth-first search, three colours)."""
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        path.append(root)
        on_path.add(root)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                return [*path[path.index(child) :], child]
            elif child not in done:
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
                on_path.add(child)
    return None


def test_cycle_finder_finds_a_cycle() -> None:
    """The check itself: a three-module cycle is found, a chain and a diamond are not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_graph_sees_function_level_imports() -> None:
    """An import inside a function is an edge (the CLI imports the adapter lazily, inside its command, and only
    through its public package: ``from ..torch import signal_stats``)."""
    assert "varprop.torch" in import_graph()["varprop.cli.inspect"]


def test_no_import_cycles_in_the_adapter() -> None:
    """No cycle among the modules of ``varprop.torch``, counting imports inside functions and under
    ``TYPE_CHECKING``."""
    graph = import_graph()
    adapter = {name: {t for t in targets if t.startswith("varprop.torch")} for name, targets in graph.items()}
    cycle = find_cycle({name: targets for name, targets in adapter.items() if name.startswith("varprop.torch")})
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycles() -> None:
    """No cycle anywhere in ``src/varprop``, counting imports inside functions and under ``TYPE_CHECKING``."""
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# The adapter's layers, lowest first: a subpackage imports only from the ones before it (and from the core).
ADAPTER_LAYERS = ("graph", "sampling", "propagation", "distributed", "report")


def _adapter_part(module: str) -> str | None:
    prefix = "varprop.torch."
    if not module.startswith(prefix):
        return None
    part = module[len(prefix) :].split(".")[0]
    return part if part in ADAPTER_LAYERS else "entry points"


@pytest.mark.parametrize("layer", ADAPTER_LAYERS)
def test_adapter_dependencies_point_down(layer: str) -> None:
    """``varprop.torch.<layer>`` imports none of the adapter's later subpackages nor its entry points."""
    allowed = set(ADAPTER_LAYERS[: ADAPTER_LAYERS.index(layer) + 1])
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if _adapter_part(module) == layer
        for target in targets
        if _adapter_part(target) is not None and _adapter_part(target) not in allowed
    )
    assert not wrong, f"{layer} imports a later part of the adapter: {wrong}"


def test_core_imports_no_adapter() -> None:
    """Dependencies point from the adapter to the core: nothing outside ``varprop.torch`` imports it, except the CLI
    (its ``inspect`` command, inside the function that needs it)."""
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if not module.startswith(("varprop.torch", "varprop.cli"))
        for target in targets
        if target.startswith("varprop.torch")
    )
    assert not wrong, f"the core imports the adapter: {wrong}"


def test_only_the_entry_points_import_distributed() -> None:
    """``varprop.torch.distributed`` is a leaf of the adapter: only ``init_model`` and ``init_`` import it, and they
    call it for sharded models only (checked at run time by the next test)."""
    importers = sorted(
        module
        for module, targets in import_graph().items()
        if any(t.startswith("varprop.torch.distributed") for t in targets)
        and not module.startswith("varprop.torch.distributed")
    )
    assert importers == ["varprop.torch._model_init", "varprop.torch._tensor_init"]


def test_unsharded_init_model_never_enters_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    """``init_model`` and ``init_module_`` on a plain model call no function of ``varprop.torch.distributed``
    (before issue 9 every call went through ``prepare_model`` and ``reshard``)."""
    torch = pytest.importorskip("torch")
    from torch import nn

    import varprop.torch as vt
    from varprop.torch.distributed import sharding

    called: list[str] = []
    for name in sharding.__all__:
        value = getattr(sharding, name)
        if callable(value) and not isinstance(value, type):

            def refuse(*args: object, _name: str = name, **kwargs: object) -> None:
                called.append(_name)
                raise AssertionError(f"distributed.sharding.{_name} called for an unsharded model")

            monkeypatch.setattr(sharding, name, refuse)
    monkeypatch.setattr(sharding, "MeshSharding", lambda *args: called.append("MeshSharding"))
    model = nn.Sequential(nn.Embedding(10, 8, padding_idx=0), nn.Linear(8, 8), nn.ELU(), nn.Linear(8, 2))
    generator = torch.Generator().manual_seed(0)
    report = vt.init_model(
        model, torch.randint(0, 10, (16, 4), generator=generator), generator=generator, calibrate="gaussian"
    )
    vt.init_module_(model[0], generator=generator)
    vt.init_(model[1].weight, "elu", generator=generator, rank_invariant=True)
    assert called == [] and len(report.layers) == 3

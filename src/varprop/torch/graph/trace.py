"""The dataflow graph of a model on an example input: torch.fx first, one recorded forward pass as the fallback.

Both paths give the same small IR: a list of ``Node`` in execution (topological) order whose arguments refer to earlier
nodes through ``Ref``. Leaf modules (weight layers, norms, activations, pooling, attention, transformer layers, and
any other ``torch.nn`` module) are single nodes; user modules are traced through. Every node carries what the example
run produced (``TensorMeta`` for tensors, plain values otherwise), so later rules know shapes and masks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.overrides import TorchFunctionMode

from ... import VarpropTypeError, VarpropValueError
from .foreign_modules import rms_norm_proxy
from .ir import Graph, Node, Ref, TensorMeta
from .modules import LEAF_TYPES
from .shapes import elementwise_meta, meta_output, output_shape

__all__ = ["build_graph", "is_leaf", "meta_parameters", "quiet_forward", "record", "trace_fx"]

# Tensors kept whole in the IR (indices, masks, small constants); larger floating tensors keep shape and dtype only.
_KEEP_NUMEL = 1 << 16


def _meta(value: Any, keep: bool = False) -> Any:
    if isinstance(value, torch.Tensor):
        small = value.numel() <= _KEEP_NUMEL or not value.is_floating_point()
        kept = value.detach() if (keep or small) else None
        return TensorMeta(tuple(value.shape), value.dtype, kept)
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        return tuple(_meta(item, keep) for item in value)
    if isinstance(value, dict):
        return {key: _meta(item, keep) for key, item in value.items()}
    return value


def is_leaf(module: nn.Module) -> bool:
    """A module recorded as one node: every handled type and any other ``torch.nn`` module except containers."""
    if isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        return False
    if isinstance(module, LEAF_TYPES):
        return True
    return type(module).__module__.startswith("torch.nn") or rms_norm_proxy(module) is not None


@contextlib.contextmanager
def quiet_forward(model: nn.Module) -> Iterator[None]:
    """Run forward passes that leave no trace: buffers (BatchNorm statistics, counters) restored, the global RNG
    untouched (forked), gradients off, PyTorch's fused attention fast path off (so that submodule hooks fire)."""
    saved: list[tuple[nn.Module, str, torch.Tensor, torch.Tensor]] = []
    for module in model.modules():
        for key, buffer in module._buffers.items():
            if buffer is not None:
                saved.append((module, key, buffer, buffer.clone()))
    devices = sorted({t.device.index or 0 for t in model.parameters() if t.device.type == "cuda"})
    fastpath = getattr(torch.backends, "mha", None)
    old_fastpath = fastpath.get_fastpath_enabled() if fastpath is not None else None
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            if fastpath is not None:
                fastpath.set_fastpath_enabled(False)
            yield
    finally:
        if fastpath is not None and old_fastpath is not None:
            fastpath.set_fastpath_enabled(old_fastpath)
        with torch.no_grad():
            for module, key, original, copy in saved:
                module._buffers[key] = original
                original.copy_(copy)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_leaf(m)


class _Recording(fx.Interpreter):
    def __init__(self, root: nn.Module, graph: fx.Graph, inputs: tuple[torch.Tensor, ...]) -> None:
        super().__init__(root, graph=graph)  # (no GraphModule: generating its code costs ~10 ms)
        self.metas: dict[str, Any] = {}
        self.inputs = inputs
        self.placeholders = 0

    def call_module(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        shortcut = meta_output(self.fetch_attr(str(target)), args, kwargs)
        return shortcut if shortcut is not None else super().call_module(target, args, kwargs)

    def call_function(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        shortcut = elementwise_meta(target, args, kwargs)
        return shortcut if shortcut is not None else super().call_function(target, args, kwargs)

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if n.op == "placeholder" and self.placeholders < len(self.inputs):
            self.metas[n.name] = _meta(self.inputs[self.placeholders], keep=True)
            self.placeholders += 1
        else:
            self.metas[n.name] = _meta(result, keep=n.op == "get_attr")
        return result


@contextlib.contextmanager
def meta_parameters(module: nn.Module) -> Iterator[None]:
    """The module's parameters and buffers swapped for ``meta`` tensors of their shapes for the block (no memory,
    no arithmetic)."""
    from torch.nn.utils.stateless import _reparametrize_module

    items = [*module.named_parameters(), *module.named_buffers()]
    with _reparametrize_module(module, {name: torch.empty_like(t, device="meta") for name, t in items}):
        yield


def _run_on_meta(root: nn.Module, graph: fx.Graph, args: tuple[torch.Tensor, ...]) -> _Recording:
    """Shapes without arithmetic: parameters, buffers and inputs replaced by ``meta`` tensors."""
    recording = _Recording(root, graph, args)
    with meta_parameters(root):
        recording.run(*(t.to("meta") for t in args))
    return recording


def _from_fx(value: Any) -> Any:
    if isinstance(value, fx.Node):
        return Ref(value.name)
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        converted = [_from_fx(item) for item in value]
        return tuple(converted) if isinstance(value, tuple) else converted
    if isinstance(value, dict):
        return {key: _from_fx(item) for key, item in value.items()}
    if isinstance(value, slice):
        return slice(_from_fx(value.start), _from_fx(value.stop), _from_fx(value.step))
    return value


_FX_OPS = {
    "placeholder": "input",
    "call_module": "module",
    "call_function": "function",
    "call_method": "method",
    "get_attr": "attr",
    "output": "output",
}


def trace_fx(model: nn.Module, args: tuple[torch.Tensor, ...]) -> Graph:
    """Trace with torch.fx and run the example through the traced graph to record shapes."""
    tracer = _Tracer()
    traced = tracer.trace(model)
    with quiet_forward(model):
        try:
            recording = _run_on_meta(tracer.root, traced, args)
        except Exception:
            recording = _Recording(tracer.root, traced, args)
            recording.run(*args)
    nodes = [
        Node(
            n.name,
            _FX_OPS[n.op],
            n.target,
            _from_fx(tuple(n.args)),
            _from_fx(dict(n.kwargs)),
            recording.metas.get(n.name),
        )
        for n in traced.nodes
    ]
    return Graph(nodes, "torch.fx")


class _Recorder(TorchFunctionMode):
    """Records top-level torch calls (functions and tensor methods) and leaf-module calls of one forward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.nodes: list[Node] = []
        self.depth = 0
        self.paused = 0  # > 0 while the recorder's own bookkeeping calls torch
        self.produced: dict[int, tuple[Ref, torch.Tensor]] = {}
        self.attrs = {id(t): name for name, t in [*model.named_parameters(), *model.named_buffers()]}
        self.pending: list[tuple[Any, ...]] = []

    def _ref(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            known = self.produced.get(id(value))
            if known is not None and known[1] is value:
                return known[0]
            name = self.attrs.get(id(value))
            if name is not None:
                ref = Ref(f"attr_{len(self.nodes)}")
                self.nodes.append(Node(ref.node, "attr", name, meta=_meta(value, keep=True)))
            else:
                ref = Ref(f"const_{len(self.nodes)}")
                self.nodes.append(Node(ref.node, "function", "constant", meta=_meta(value, keep=True)))
            self.produced[id(value)] = (ref, value)
            return ref
        if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
            converted = [self._ref(item) for item in value]
            return tuple(converted) if isinstance(value, tuple) else converted
        if isinstance(value, dict):
            return {key: self._ref(item) for key, item in value.items()}
        return value

    def add(self, op: str, target: Any, args: Any, kwargs: Any, out: Any, keep: bool = False) -> Ref:
        self.paused += 1
        try:
            ref_args, ref_kwargs = self._ref(tuple(args)), self._ref(dict(kwargs))
            ref = Ref(f"{op}_{len(self.nodes)}")
            self.nodes.append(Node(ref.node, op, target, ref_args, ref_kwargs, _meta(out, keep)))
            self._claim(out, ref)
        finally:
            self.paused -= 1
        return ref

    def _claim(self, out: Any, ref: Ref, index: tuple[int, ...] = ()) -> None:
        if isinstance(out, torch.Tensor):
            if index:  # an element of a tuple output: a getitem node chain
                current = ref
                for position in index:
                    child = Ref(f"getitem_{len(self.nodes)}")
                    self.nodes.append(Node(child.node, "function", "getitem", (current, position), {}, None))
                    current = child
                self.nodes[-1].meta = _meta(out)
                self.produced[id(out)] = (current, out)
            else:
                self.produced[id(out)] = (ref, out)
        elif isinstance(out, (tuple, list)) and not isinstance(out, torch.Size):
            for position, item in enumerate(out):
                self._claim(item, ref, (*index, position))

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth == 0 and self.paused == 0 and _has_tensor(out):
            name = getattr(func, "__name__", "")
            if name == "__get__":
                owner = getattr(func, "__self__", None)
                self.add("method", getattr(owner, "__name__", "attribute"), args, kwargs, out)
            elif getattr(torch.Tensor, name, None) is func or getattr(torch._C.TensorBase, name, None) is func:
                self.add("method", name, args, kwargs, out)
            else:
                self.add("function", func, args, kwargs, out)
        return out


def _has_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list)):
        return any(_has_tensor(item) for item in value)
    return False


def record(model: nn.Module, args: tuple[torch.Tensor, ...]) -> Graph:
    """One forward pass with hooks on leaf modules and a ``TorchFunctionMode`` for everything between them."""
    recorder = _Recorder(model)
    names = {module: name for name, module in model.named_modules()}
    for position, tensor in enumerate(args):
        ref = Ref(f"input_{position}")
        recorder.nodes.append(Node(ref.node, "input", f"input_{position}", meta=_meta(tensor, keep=True)))
        recorder.produced[id(tensor)] = (ref, tensor)

    def pre_hook(module: nn.Module, hook_args: tuple[Any, ...], hook_kwargs: dict[str, Any]) -> None:
        if recorder.depth == 0:
            recorder.pending.append((hook_args, dict(hook_kwargs)))
        recorder.depth += 1

    def post_hook(module: nn.Module, hook_args: tuple[Any, ...], hook_kwargs: dict[str, Any], out: Any) -> None:
        recorder.depth -= 1
        if recorder.depth == 0:
            call_args, call_kwargs = recorder.pending.pop()
            recorder.add("module", names[module], call_args, call_kwargs, out)

    handles = []
    for module in names:
        if module is not model and is_leaf(module) and not _inside_leaf(module, names, model):
            handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
            handles.append(module.register_forward_hook(post_hook, with_kwargs=True))
    try:
        with quiet_forward(model), recorder:
            out = model(*args)
            recorder.paused += 1
            output_args = recorder._ref((out,))
    finally:
        for handle in handles:
            handle.remove()
    recorder.nodes.append(Node("output", "output", "output", output_args, {}, None))
    return Graph(recorder.nodes, "hooks")


def _inside_leaf(module: nn.Module, names: dict[nn.Module, str], model: nn.Module) -> bool:
    name = names[module]
    parts = name.split(".")
    for cut in range(1, len(parts)):
        parent = model.get_submodule(".".join(parts[:cut]))
        if is_leaf(parent):
            return True
    return False


def _leaf_graph(model: nn.Module, args: tuple[torch.Tensor, ...]) -> Graph:
    """A model that is itself a leaf (``nn.TransformerEncoder``, ``nn.Linear``): one module node named ``""``."""
    known = output_shape(model, tuple(args[0].shape), args[0].is_floating_point()) if len(args) == 1 else None
    if known is not None:
        nodes = [Node("input_0", "input", "input_0", meta=_meta(args[0], keep=True))]
        nodes.append(Node("model", "module", "", (Ref("input_0"),), {}, TensorMeta(known, args[0].dtype)))
        nodes.append(Node("output", "output", "output", (Ref("model"),), {}, None))
        return Graph(nodes, "single module")
    with quiet_forward(model):
        try:
            with meta_parameters(model):
                on_meta = tuple(t.to("meta") for t in args)
                out = meta_output(model, on_meta, {})
                out = model(*on_meta) if out is None else out
        except Exception:
            out = model(*args)
    nodes = [Node(f"input_{i}", "input", f"input_{i}", meta=_meta(t, keep=True)) for i, t in enumerate(args)]
    nodes.append(Node("model", "module", "", tuple(Ref(f"input_{i}") for i in range(len(args))), {}, _meta(out)))
    nodes.append(Node("output", "output", "output", (Ref("model"),), {}, None))
    return Graph(nodes, "single module")


def _sequential_chain(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The leaf modules of a plain ``nn.Sequential`` in call order (nested plain Sequentials flattened), or ``None``
    when the chain holds anything else (a user module, a subclass, a hook on a container)."""
    chain: list[tuple[str, nn.Module]] = []

    def walk(container: nn.Module, prefix: str) -> bool:
        if type(container) is not nn.Sequential or container._forward_hooks or container._forward_pre_hooks:
            return False
        for name, child in container._modules.items():
            qualified = f"{prefix}.{name}" if prefix else name
            if child is None or isinstance(child, nn.Sequential):
                if child is None or not walk(child, qualified):
                    return False
            elif is_leaf(child):
                chain.append((qualified, child))
            else:
                return False
        return True

    return chain if walk(model, "") else None


def _sequential_graph(model: nn.Module, args: tuple[torch.Tensor, ...]) -> Graph | None:
    """The graph of a plain ``nn.Sequential`` of leaf modules without tracing: the chain of its modules, as torch.fx
    traces it (the same nodes, but for their names), with shapes from ``output_shape`` or from the module run on
    ``meta`` tensors (tracing a 200-module Sequential costs ~20 ms, this ~1 ms). ``None``: trace it."""
    chain = _sequential_chain(model)
    if chain is None or len(args) != 1 or not isinstance(args[0], torch.Tensor):
        return None
    nodes = [Node("input", "input", "input", meta=_meta(args[0], keep=True))]
    shape, dtype = tuple(args[0].shape), args[0].dtype
    with quiet_forward(model):
        for qualified, module in chain:
            known = output_shape(module, shape, dtype.is_floating_point)
            if known is not None:
                meta: Any = TensorMeta(known, dtype)
            else:  # run it on meta tensors (parameters and buffers too)
                try:
                    with meta_parameters(module):
                        out = module(torch.empty(shape, dtype=dtype, device="meta"))
                except Exception:
                    return None  # let the tracer (and its fallback, a real forward pass) deal with it
                if not isinstance(out, torch.Tensor):
                    return None
                meta = _meta(out)
            nodes.append(Node("_" + qualified.replace(".", "_"), "module", qualified, (Ref(nodes[-1].name),), {}, meta))
            shape, dtype = meta.shape, meta.dtype
    nodes.append(Node("output", "output", "output", (Ref(nodes[-1].name),), {}, nodes[-1].meta))
    return Graph(nodes, "nn.Sequential")


def build_graph(model: nn.Module, args: tuple[torch.Tensor, ...]) -> Graph:
    """torch.fx when it traces; otherwise one recorded forward pass. Raises when the example does not fit the model."""
    try:
        if is_leaf(model):
            return _leaf_graph(model, args)
        return _sequential_graph(model, args) or trace_fx(model, args)
    except Exception as fx_error:
        reason = f"{type(fx_error).__name__}: {str(fx_error).splitlines()[0] if str(fx_error) else ''}"
    try:
        graph = record(model, args)
    except Exception as error:
        shapes = ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in args)
        if any(not t.is_floating_point() for t in args):
            raise VarpropTypeError(
                f"example_input ({shapes}) holds an integer tensor and the model's forward pass raised "
                f"{type(error).__name__}: {error}. Only embeddings take indices; pass a floating tensor"
            ) from error
        raise VarpropValueError(
            f"example_input ({shapes}) does not fit the model: its forward pass raised "
            f"{type(error).__name__}: {error}. Pass an input the model accepts (or its shape)"
        ) from error
    graph.note = f"torch.fx could not trace the model ({reason}); recorded one forward pass with hooks instead"
    return graph

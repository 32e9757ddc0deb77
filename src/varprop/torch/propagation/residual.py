"""Residual connections: find them in the graph and choose the variance of each branch.

A residual add is ``a + b`` where ``a`` (the skip) is an ancestor of ``b`` (the branch). Adds whose skip comes straight
from an earlier add (through shape changes, dropout and elementwise activations only) form a chain; a normalization
or a weight layer on the skip path ends the chain (post-norm transformers have chains of length 1). A ResNet v1
block's output phi(x + F(x)) stays in its stage's chain: otherwise every add would double the stream (chains of
length 1), 16 post-activation ELU blocks growing it ~500x.
``nn.TransformerEncoderLayer`` with ``norm_first=True`` is two links of a chain, ``nn.TransformerEncoder`` 2 per layer.

Policies (``init_model(residual=...)``), for a chain of L links whose branches are independent of the skip at
initialization (zero-mean last weights), so that variances add:

- ``"scaled"`` (default): each branch's last layer (or last normalization's gamma) gets the output variance
  Var[skip] * (2^(1/L) - 1); the stream's variance is multiplied by 2^(1/L) per link, exactly 2 after the last
  one, whatever the depth.
- ``"none"``: every branch at ``target_var`` (the usual init): the stream grows by target_var per link, L + 1 fold.
- ``"zero"``: the branch's last layer is zero (Fixup / SkipInit / ReZero style): every block starts as the identity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..graph.activations import activation_of_module, is_activation_function, is_activation_method
from ..graph.ir import Graph, Node, Ref, iter_refs
from ..graph.modules import CONV_LAYERS, CONV_TRANSPOSE_LAYERS, NORM_TYPES
from .names import AXIS_OPS
from .normalization import inner_activation
from .plan import Context, qualify
from .stats import Stat

__all__ = ["RESIDUAL_POLICIES", "SCALE_OPS", "STREAM_OPS", "ResidualInfo", "analyze", "branch_variance"]

RESIDUAL_POLICIES: tuple[str, ...] = ("scaled", "none", "zero")

# Operations that keep a tensor's values up to layout (the skip stream may pass through them).
STREAM_OPS = (
    frozenset(
        {
            "contiguous",
            "clone",
            "detach",
            "to",
            "float",
            "double",
            "half",
            "bfloat16",
            "type",
            "type_as",
            "dropout",
            "dropout1d",
            "dropout2d",
            "dropout3d",
            "alpha_dropout",
            "feature_alpha_dropout",
            "getitem",
            "identity",
            "pos",
        }
    )
    | AXIS_OPS
)
# Operations through which a branch's scale can be pushed back to its last weights (scale-equivariant).
SCALE_OPS = STREAM_OPS | {"mul", "truediv", "div", "neg", "avg_pool1d", "avg_pool2d", "avg_pool3d", "sum", "mean"}


@dataclass
class ResidualInfo:
    adds: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # add node -> (skip, branch, L)
    block_chain: dict[str, int] = field(default_factory=dict)  # transformer module key -> L
    ends: dict[str, list[str]] = field(default_factory=dict)  # add node -> branch end keys


def branch_variance(ctx: Context, chain: int, skip: Stat) -> float:
    """Target variance of a branch end under ``ctx.residual`` for a chain of ``chain`` links."""
    if ctx.residual == "zero":
        return 0.0
    if ctx.residual == "none":
        return ctx.target_var
    return float(skip.variance * (2.0 ** (1.0 / max(chain, 1)) - 1.0))


def _is_stream_block(module: nn.Module | None) -> int:
    """Links a transformer module adds to a chain (0 when it normalizes its output)."""
    if isinstance(module, nn.TransformerEncoderLayer):
        return 2 if module.norm_first else 0
    if isinstance(module, nn.TransformerEncoder):
        layers = list(module.layers)
        pre_norm = all(isinstance(layer, nn.TransformerEncoderLayer) and layer.norm_first for layer in layers)
        return 2 * len(layers) if pre_norm and module.norm is None else 0
    return 0


def analyze(graph: Graph, modules: dict[str, nn.Module], canonical: Callable[[Node], str]) -> ResidualInfo:
    """Residual adds, their branch ends and chain lengths (see the module docstring)."""
    nodes = {node.name: node for node in graph.nodes}
    order = {node.name: index for index, node in enumerate(graph.nodes)}
    ancestors: dict[str, int] = {}
    for node in graph.nodes:
        bits = 0
        for ref in iter_refs((node.args, node.kwargs)):
            bits |= ancestors.get(ref.node, 0) | (1 << order[ref.node])
        ancestors[node.name] = bits
    info = ResidualInfo()
    weight: dict[str, int] = {}
    previous: dict[str, str | None] = {}

    def tensor_args(node: Node) -> list[str]:
        return [a.node for a in node.args if isinstance(a, Ref)]

    def walk_stream(name: str) -> str | None:
        """The chain member that feeds ``name`` through stream operations only."""
        seen = 0
        while name in nodes and seen < 10_000:
            seen += 1
            if name in weight:
                return name
            node = nodes[name]
            args = tensor_args(node)
            if node.op in ("function", "method") and canonical(node) in STREAM_OPS and args:
                name = args[0]
                continue
            if node.op == "module" and isinstance(modules.get(str(node.target)), (nn.Dropout, nn.Identity)) and args:
                name = args[0]
                continue
            if _is_activation(node, modules) and args:  # post-activation: x = phi(x + F(x)) (ResNet v1)
                name = args[0]
                continue
            return None
        return None

    for node in graph.nodes:
        args = tensor_args(node)
        block = _is_stream_block(modules.get(str(node.target))) if node.op == "module" else 0
        if block and args:
            weight[node.name] = block
            previous[node.name] = walk_stream(args[0])
            continue
        if node.op not in ("function", "method") or canonical(node) not in ("add", "iadd") or len(args) != 2:
            continue
        first, second = args
        if (ancestors[second] >> order[first]) & 1:
            skip, branch = first, second
        elif (ancestors[first] >> order[second]) & 1:
            skip, branch = second, first
        else:
            continue
        weight[node.name] = 1
        previous[node.name] = walk_stream(skip)
        info.adds[node.name] = (skip, branch, 0)
    depth_in: dict[str, int] = {}
    for name in sorted(weight, key=order.__getitem__):
        before = previous.get(name)
        depth_in[name] = weight[name] + (depth_in[before] if before is not None else 0)
    depth_out = dict.fromkeys(weight, 0)
    for name in sorted(weight, key=order.__getitem__, reverse=True):
        before = previous.get(name)
        if before is not None:
            depth_out[before] = max(depth_out[before], weight[name] + depth_out[name])
    for name in weight:
        chain = depth_in[name] + depth_out[name]
        if name in info.adds:
            skip, branch, _ = info.adds[name]
            info.adds[name] = (skip, branch, chain)
        else:
            info.block_chain[str(nodes[name].target)] = chain
    for name, (_skip, branch, _chain) in info.adds.items():
        info.ends[name] = _branch_ends(branch, nodes, modules, canonical)
    return info


def _branch_ends(
    name: str, nodes: dict[str, Node], modules: dict[str, nn.Module], canonical: Callable[[Node], str]
) -> list[str]:
    """Keys of the layers whose scale sets the branch's output scale; ``"!<op>"`` marks a branch that cannot be
    scaled (it ends in a nonlinearity)."""
    node = nodes.get(name)
    if node is None:
        return ["!unknown"]
    args = [a.node for a in node.args if isinstance(a, Ref)]
    if node.op == "module":
        module = modules.get(str(node.target))
        if isinstance(module, nn.MultiheadAttention):
            return [qualify(str(node.target), "out_proj")]
        if isinstance(module, NORM_TYPES):
            scalable = getattr(module, "weight", None) is not None and inner_activation(module) is None
            return [str(node.target)] if scalable else [f"!{node.target}"]
        if isinstance(module, (nn.Linear, nn.Embedding, *CONV_LAYERS, *CONV_TRANSPOSE_LAYERS)):
            return [str(node.target)]
        if isinstance(module, (nn.Dropout, nn.Identity, nn.Flatten, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)) and args:
            return _branch_ends(args[0], nodes, modules, canonical)
        return [f"!{node.target}"]
    if node.op in ("function", "method"):
        op = canonical(node)
        if op in ("linear", "conv1d", "conv2d", "conv3d", "matmul", "addmm") and len(node.args) > 1:
            return [name]
        if op == "mul" and len(args) == 2 and any(_is_parameter(nodes.get(a), modules) for a in args):
            return [name]  # a layer scale (gamma * branch): its value is the branch's gain (see _direct)
        if op in ("add", "iadd", "sub") and len(args) == 2:
            return _branch_ends(args[0], nodes, modules, canonical) + _branch_ends(args[1], nodes, modules, canonical)
        if op in SCALE_OPS and args:
            return _branch_ends(args[0], nodes, modules, canonical)
        return [f"!{op}"]
    return [f"!{node.op}"]


def _is_activation(node: Node, modules: dict[str, nn.Module]) -> bool:
    """Whether ``node`` applies an elementwise activation (a module, a torch function or a tensor method)."""
    if node.op == "module":
        module = modules.get(str(node.target))
        return module is not None and activation_of_module(module) is not None
    if node.op == "function":
        return is_activation_function(node.target)
    return node.op == "method" and is_activation_method(node.target)


def _is_parameter(node: Node | None, modules: dict[str, nn.Module]) -> bool:
    """Whether ``node`` reads a parameter (not a buffer) of the model."""
    if node is None or node.op != "attr":
        return False
    owner, _, leaf = str(node.target).rpartition(".")
    module = modules.get(owner)
    return module is not None and leaf in module._parameters


def register_branches(ctx: Context, info: ResidualInfo, env: dict[str, Any]) -> None:
    """Set ``ctx.branch_target`` for the ends of every residual add found in the graph (lazy: the skip's Stat is read
    from ``env`` when the end's layer is reached, which is after the skip has been computed)."""
    if ctx.residual == "none":
        return
    for name, (skip, _branch, chain) in info.adds.items():
        ends = info.ends.get(name, [])
        bad = [end[1:] for end in ends if end.startswith("!")]
        if bad:
            ctx.warn(
                f"residual add {name}: its branch ends in {', '.join(bad)} (not a weight layer or normalization); "
                f"residual policy {ctx.residual!r} not applied to it"
            )
            continue
        for end in ends:
            ctx.branch_target[end] = _lazy_target(ctx, chain, skip, env)
            ctx.branch_label[end] = f"branch of {name} (chain of {chain})"


def _lazy_target(ctx: Context, chain: int, skip: str, env: dict[str, Any]) -> Callable[[], float]:
    def target() -> float:
        stat = env.get(skip)
        if not isinstance(stat, Stat):
            return ctx.target_var
        return branch_variance(ctx, chain, stat)

    return target


def block_branch_rule(chain: int) -> Callable[[Context, str, Stat], None]:
    """The rule a transformer layer calls before each of its branches (see ``_attention.transformer_layer``)."""

    def rule(ctx: Context, key: str, skip: Stat) -> None:
        if ctx.residual == "none":
            return
        value = branch_variance(ctx, chain, skip)
        ctx.branch_target[key] = lambda: value
        ctx.branch_label[key] = f"transformer branch (chain of {chain})"

    return rule

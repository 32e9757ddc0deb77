"""Walk the graph in order and apply each node's propagation rule (the dispatcher over ``_layers``, ``_ops``,
``_attention``, ``_elementwise``, ``_functional_weights``, ``_unknown``). Values in the environment are ``Stat``
(floating tensors), ``IndexStat`` (integer tensors), ``TensorMeta`` (parameters, buffers, constants: position ids,
masks), ``Unknown`` (downstream of what is not propagated), tuples of those, or plain Python values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ... import VarpropTypeError
from ..graph.activations import activation_of_function, activation_of_method, activation_of_module
from ..graph.foreign_modules import rms_norm_proxy
from ..graph.ir import Graph, Node, Ref, TensorMeta, iter_refs, map_refs
from ..graph.modules import DROPOUT_TYPES, NORM_TYPES, POOL_TYPES, RECURRENT_TYPES
from .attention import (
    attention_output,
    attention_token_correlation,
    multihead_attention,
    row_counts,
    tilt_variance,
    transformer_encoder,
    transformer_layer,
)
from .direct import DirectParameter, combine, unwrap
from .elementwise import elementwise_formulas
from .functional_weights import FunctionalWeightRules
from .layers import embedding, module_weight_layer
from .names import (
    AXIS_OPS,
    CASTS,
    COLLAPSE_OPS,
    POOL_FUNCTIONS,
    SPLIT_OPS,
    VALUE_OPS,
    arg,
    as_tuple,
    canonical,
    carries_signal,
    constant_indices,
    first_unknown,
    index_values,
    is_integer_constant,
    output_stats,
    tensor_stat,
)
from .normalization import normalization
from .ops import (
    add_stats,
    cat_stats,
    move_axis,
    mul_stats,
    pool,
    reduce_mean,
    shift,
    softmax_stat,
    square_stat,
)
from .plan import ActivationUse, Context
from .recurrent import recurrent
from .residual import STREAM_OPS, analyze, block_branch_rule, register_branches
from .stats import IndexStat, Stat, channel_view, collapse, scalar_stat
from .streams import Atoms, PostActivationStreams
from .tied import first_use, record_tied_use
from .unknown import UnknownRules

__all__ = ["canonical", "output_stats", "propagate"]


class _Propagation(UnknownRules, FunctionalWeightRules, PostActivationStreams):
    def __init__(self, graph: Graph, model: nn.Module, ctx: Context, inputs: Sequence[Any], strict: bool) -> None:
        self.graph, self.model, self.ctx, self.strict = graph, model, ctx, strict
        self.modules = dict(model.named_modules(remove_duplicate=False))  # (one module at several places)
        self.inputs = list(inputs)
        self.env: dict[str, Any] = ctx.env
        self.meta = {node.name: node.meta for node in graph.nodes}
        self.info = analyze(graph, self.modules, canonical)
        register_branches(ctx, self.info, self.env)
        self.formulas = elementwise_formulas(graph, canonical)
        self.users = graph.consumers()
        self.unknown_as_unit = False  # (while a rule runs on an Unknown input: see ``through_unknown``)
        self.kept: frozenset[int] = frozenset()
        # Correlation between two tokens of one sequence, per node (see ``token_correlation``); set by attention.
        self.token_corr: dict[str, float] = {}
        # Activation outputs' distributions, per node (see ``streams``; ``None``: not representable).
        self.atoms: dict[str, Atoms | None] = {}
        self.nodes = {node.name: node for node in graph.nodes}

    # -- helpers -------------------------------------------------------------------------------------------------
    def value(self, item: Any) -> Any:
        if self.unknown_as_unit:
            return map_refs(item, lambda ref: self.unit_if_unknown(unwrap(self.env[ref.node])))
        return map_refs(item, lambda ref: unwrap(self.env[ref.node]))

    def stat(self, value: Any, where: str) -> Stat:
        """The value as a per-channel ``Stat`` (spatial maps reduced; see ``raw_stat``)."""
        return channel_view(self.raw_stat(value, where))

    def raw_stat(self, value: Any, where: str) -> Stat:
        """The value as a ``Stat``, keeping spatial maps (for the rules that use them)."""
        if isinstance(value, Stat):
            return value
        if isinstance(value, TensorMeta):
            found = tensor_stat(value)
            if isinstance(found, Stat):
                return found
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return scalar_stat(float(value), float(value) ** 2)
        if isinstance(value, IndexStat):
            raise VarpropTypeError(
                f"{where or 'the model'} receives an integer tensor; only nn.Embedding (or F.embedding) takes indices. "
                "Pass a floating example_input (e.g. torch.randn(shape)) or check the model's input"
            )
        raise VarpropTypeError(f"{where}: expected a tensor, got {type(value).__name__}")

    def attribute(self, node: Node) -> Any:
        """A parameter read in ``forward`` (see ``_direct``), else the attribute's meta."""
        try:
            param = self.model.get_parameter(str(node.target))
        except (AttributeError, ValueError):
            return node.meta
        return DirectParameter(param, node.meta, node.meta)

    def in_meta(self, node: Node, index: int = 0) -> Any:
        refs = [a for a in node.args if isinstance(a, Ref)]
        return self.meta.get(refs[index].node) if len(refs) > index else None

    def param(self, ref: Any) -> torch.Tensor | None:
        if not isinstance(ref, Ref):
            return None
        node = next((n for n in self.graph.nodes if n.name == ref.node), None)
        if node is None or node.op != "attr":
            return None
        try:
            found = self.model.get_parameter(str(node.target))
        except (AttributeError, ValueError):
            return None
        return found

    # -- main loop -----------------------------------------------------------------------------------------------
    def run(self) -> Any:
        placeholder = 0
        output: Any = None
        for node in self.graph.nodes:
            if node.op == "input":
                value = self.inputs[placeholder] if placeholder < len(self.inputs) else node.meta
                placeholder += 1
            elif node.op == "attr":
                value = self.attribute(node)
            elif node.op == "output":
                output = self.value(node.args[0] if node.args else None)
                value = output
            elif (unknown := first_unknown((self.value(node.args), self.value(node.kwargs)))) is not None:
                value = self.through_unknown(node, unknown)
            elif self.kept:
                value = self.keeping(node)
            elif node.op == "module":
                value = self.module(node)
            else:
                value = self.operation(node)
            if isinstance(value, (Stat, tuple)):  # (tuples: the parts of a split)
                self.token_correlation(node)
            self.env[node.name] = value
        return output

    def token_correlation(self, node: Node) -> None:
        """The correlation rho between two tokens of one sequence in the node's output, a side channel of the Stat
        read by attention (``attention_output``): set by attention itself; a sum of two signals mixes their rho by
        their variances (independent terms), a product of two multiplies them (zero-mean factors); every other
        operation keeps its input's (exact for linear maps and normalizations, a first-order approximation for
        activations). Zero from the inputs and embeddings (tokens drawn independently)."""
        if node.name in self.token_corr:
            return
        refs = [ref.node for ref in node.args if isinstance(ref, Ref)]
        found = [self.token_corr[ref.node] for ref in iter_refs(node.args) if self.token_corr.get(ref.node, 0.0) > 0]
        if not found or (node.op == "module" and isinstance(self.modules.get(str(node.target)), nn.Embedding)):
            return
        name = canonical(node) if node.op in ("function", "method") else ""
        stats = [self.env.get(ref) for ref in refs]
        if name in ("add", "sub") and len(stats) == 2 and all(isinstance(stat, Stat) for stat in stats):
            weights = [stat.variance for stat in stats]  # type: ignore[union-attr]
            if sum(weights) > 0:
                rho = sum(self.token_corr.get(ref, 0.0) * w for ref, w in zip(refs, weights, strict=True))
                self.token_corr[node.name] = rho / sum(weights)
            return
        if name == "mul" and len(stats) == 2 and all(isinstance(stat, Stat) for stat in stats):
            self.token_corr[node.name] = self.token_corr.get(refs[0], 0.0) * self.token_corr.get(refs[1], 0.0)
            return
        self.token_corr[node.name] = found[0]

    def module(self, node: Node) -> Any:
        key = str(node.target)
        module = self.modules[key]
        args = self.value(node.args)
        kwargs = self.value(node.kwargs)
        ctx = self.ctx
        first = args[0] if args else None
        tied = first_use(ctx, key, getattr(module, "weight", None))
        if tied is not None and self.modules.get(tied.name) is module:
            tied = None  # (one module at two places: its later calls are counted on its row, as when called twice)
        if isinstance(module, nn.Embedding):
            indices = constant_indices(first) if isinstance(first, TensorMeta) and is_integer_constant(first) else first
            out = embedding(ctx, key, module, indices, node.meta)
            if tied is not None:
                record_tied_use(ctx, key, module, tied, None, out)
            return out
        if isinstance(
            module,
            (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d),
        ):
            where = f"{key or 'the model'} ({type(module).__name__})"
            x = self.raw_stat(first, where)
            if parametrize.is_parametrized(module, "weight"):
                return self.parametrized(node, key, module, x)
            out = module_weight_layer(ctx, key, module, x, self.in_meta(node), node.meta)
            if tied is not None:
                record_tied_use(ctx, key, module, tied, x, out)
            return out
        if isinstance(module, NORM_TYPES):
            return normalization(ctx, key, module, self.raw_stat(first, key), self.in_meta(node))
        rms = rms_norm_proxy(module)
        if rms is not None:  # (Hugging Face's RMS norms: nn.RMSNorm written as tensor code)
            return normalization(ctx, key, rms, self.raw_stat(first, key), self.in_meta(node))
        if isinstance(module, RECURRENT_TYPES):
            return recurrent(ctx, key, module, self.stat(first, key), self.in_meta(node), node.meta)
        act = activation_of_module(module)
        if act is not None:
            x = self.raw_stat(first, key)
            ctx.activations.append(ActivationUse(key, act, x.variance, x.pooled_mean))
            return self.activate(node, act, x)
        if isinstance(module, DROPOUT_TYPES):
            return first
        if isinstance(module, (nn.Flatten, nn.Unflatten)):
            return move_axis(self.raw_stat(first, key), "flatten", (), self.in_meta(node), node.meta)
        if isinstance(module, POOL_TYPES):
            return self.pool_module(node, module, self.raw_stat(first, key))
        if isinstance(module, nn.Softmax):
            meta = self.in_meta(node)
            dim = module.dim if module.dim is not None else -1
            count = meta.shape[dim] if isinstance(meta, TensorMeta) else 1
            return softmax_stat(self.stat(first, key), count, getattr(node.meta, "ndim", None))
        if isinstance(module, nn.MultiheadAttention):
            query = self.stat(first, key)
            key_stat = self.stat(arg(args, kwargs, 1, "key", first), key)
            value_stat = self.stat(arg(args, kwargs, 2, "value", first), key)
            refs = [a for a in node.args if isinstance(a, Ref)]
            metas = tuple(self.meta.get(r.node) for r in (refs + refs[:1] * 3)[:3])
            out = multihead_attention(
                ctx,
                key,
                module,
                query,
                key_stat,
                value_stat,
                metas,  # type: ignore[arg-type]
                attn_mask=self.arg_meta(node, 5, "attn_mask"),
                key_padding_mask=self.arg_meta(node, 3, "key_padding_mask"),
                is_causal=bool(arg(args, kwargs, 7, "is_causal", False)),
                same_key_value=(len(refs) >= 3 and refs[1] == refs[2]) or len(refs) == 1,
            )
            return (out, None)
        if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerEncoder)):
            chain = self.info.block_chain.get(key, 1)
            rule = block_branch_rule(chain if chain > 0 else 1)
            if isinstance(module, nn.TransformerEncoderLayer):
                return transformer_layer(
                    ctx,
                    key,
                    module,
                    self.stat(first, key),
                    self.in_meta(node),
                    mask=self.arg_meta(node, 1, "src_mask"),
                    key_padding_mask=self.arg_meta(node, 2, "src_key_padding_mask"),
                    is_causal=bool(arg(args, kwargs, 3, "is_causal", False)),
                    branch_rule=rule,
                )
            return transformer_encoder(
                ctx,
                key,
                module,
                self.stat(first, key),
                self.in_meta(node),
                mask=self.arg_meta(node, 1, "mask"),
                key_padding_mask=self.arg_meta(node, 2, "src_key_padding_mask"),
                is_causal=bool(arg(args, kwargs, 3, "is_causal", False)),
                branch_rule=rule,
            )
        owned = [name for name, _ in module.named_parameters()]
        if owned:
            for name in owned:
                ctx.warn(f"{key}.{name}: owned by unsupported module {type(module).__name__}; left as it is")
        return self.unknown(f"{key} ({type(module).__name__})", node, args)

    def arg_meta(self, node: Node, index: int, name: str) -> Any:
        item = arg(node.args, node.kwargs, index, name)
        return self.meta.get(item.node) if isinstance(item, Ref) else item

    def pool_module(self, node: Node, module: nn.Module, x: Stat) -> Stat:
        name = type(module).__name__
        kind = "max" if "Max" in name else "avg"
        adaptive = name.startswith("Adaptive")
        dims = int(name[-2]) if name[-2].isdigit() else 2
        pre = self.pre_activation_of(node)
        if adaptive:
            return pool(self.ctx, kind, x, self.in_meta(node), node.meta, kernel=None, pre_activation=pre)
        kernel = as_tuple(module.kernel_size, dims)
        return pool(
            self.ctx,
            kind,
            x,
            self.in_meta(node),
            node.meta,
            kernel=kernel,
            stride=as_tuple(module.stride or kernel, dims),
            padding=as_tuple(module.padding, dims),
            ceil_mode=bool(getattr(module, "ceil_mode", False)),
            count_include_pad=bool(getattr(module, "count_include_pad", True)),
            pre_activation=pre,
        )

    def pre_activation_of(self, node: Node) -> Any:
        refs = [a for a in node.args if isinstance(a, Ref)]
        return self.ctx.pre_activation.get(refs[0].node) if refs else None

    # -- functions and methods -----------------------------------------------------------------------------------
    def operation(self, node: Node) -> Any:
        name = canonical(node)
        raw = list(map_refs(node.args, lambda ref: self.env[ref.node]))
        items = node.args[0] if name == "cat" and node.args and isinstance(node.args[0], (list, tuple)) else ()
        metas = [self.meta.get(getattr(r, "node", "")) for r in items]
        direct = combine(
            self.ctx, node.name, name, raw, node.meta, metas, map_refs(node.kwargs, lambda r: self.env[r.node])
        )
        if direct is not NotImplemented:
            return direct
        args = list(self.value(node.args))
        kwargs = self.value(node.kwargs)
        ctx = self.ctx
        if name == "constant":
            return tensor_stat(node.meta) if isinstance(node.meta, TensorMeta) else node.meta
        if not any(isinstance(v, (Stat, IndexStat, TensorMeta, tuple, list)) for v in [*args, *kwargs.values()]):
            return node.meta  # plain Python (shapes, sizes) or a factory: what the example produced
        if (
            isinstance(node.meta, TensorMeta)
            and (is_integer_constant(node.meta) or node.meta.value is not None)
            and not carries_signal((args, kwargs))
        ):
            # tensors computed from constants only (position ids from arange + offset, a position_ids buffer sliced,
            # causal masks from comparisons, rotary tables from inv_freq): not signal, their example value passes on
            return node.meta
        formula = self.formulas.get(node.name)
        if formula is not None and formula.needed and isinstance(self.env.get(formula.source), Stat):
            value = self.formula(node, formula, self.env[formula.source])
            if value is not None:
                return value
        act = None
        if node.op == "function" and not isinstance(node.target, str):
            act = activation_of_function(node.target, args[1:], kwargs)
        elif node.op == "method":
            act = activation_of_method(str(node.target))
        if act is not None:
            x = self.raw_stat(args[0], name)
            ctx.activations.append(ActivationUse(f"{node.name} ({name})", act, x.variance, x.pooled_mean))
            return self.activate(node, act, x)
        first = args[0] if args else None
        if isinstance(first, IndexStat) and name in CASTS:
            return index_values(first, getattr(node.meta, "ndim", None))
        if isinstance(first, IndexStat) and name not in ("embedding",):
            return first
        if name in VALUE_OPS:
            return node.meta
        if name == "getitem":
            return self.getitem(node, first, args)
        if name in STREAM_OPS and name not in AXIS_OPS:
            return first if isinstance(first, Stat) else self.stat(first, name)
        if name in AXIS_OPS:
            return move_axis(self.raw_stat(first, name), name, args[1:], self.in_meta(node), node.meta)
        if name in COLLAPSE_OPS:
            return collapse(self.stat(first, name))
        if name in SPLIT_OPS:
            return self.split(node, self.stat(first, name))
        if name in ("add", "sub", "rsub"):
            return self.add(node, name, args, kwargs)
        if name in ("mul", "div", "rdiv", "neg"):
            return self.mul(node, name, args)
        if name in ("matmul", "mm", "bmm", "linear", "conv1d", "conv2d", "conv3d", "embedding"):
            return self.functional_weight(node, name, args, kwargs)
        if name == "addmm" and self.param(arg(node.args, node.kwargs, 2, "mat2")) is not None:
            return self.addmm(node, args, kwargs)
        if name in ("cat", "stack"):
            return self.cat(node, name, args, kwargs)
        if name in ("mean", "sum"):
            return self.reduce(node, name, args, kwargs)
        if name in POOL_FUNCTIONS:
            return self.pool_function(node, name, args, kwargs)
        if name in ("softmax",):
            meta = self.in_meta(node)
            dim = arg(args, kwargs, 1, "dim", -1)
            count = meta.shape[dim] if isinstance(meta, TensorMeta) else 1
            return softmax_stat(self.stat(first, name), count, getattr(node.meta, "ndim", None))
        if name == "scaled_dot_product_attention":
            return self.sdpa(node, args, kwargs)
        if name in ("layer_norm", "group_norm", "rms_norm", "batch_norm", "instance_norm", "normalize"):
            ctx.note_unknown(f"{name}()", "functional normalization: output treated as unit variance, zero mean")
            return scalar_stat(0.0, 1.0, getattr(node.meta, "ndim", None))
        if name == "pad":
            x = collapse(self.stat(first, name))
            in_meta, out_meta = self.in_meta(node), node.meta
            if isinstance(in_meta, TensorMeta) and isinstance(out_meta, TensorMeta) and out_meta.numel:
                keep = in_meta.numel / out_meta.numel
                return scalar_stat(x.pooled_mean * keep, x.second_moment * keep, out_meta.ndim)
            return x
        what = f"{name}()" if node.op == "function" else f".{name}()"
        return self.unknown(what, node, args)

    def getitem(self, node: Node, first: Any, args: Sequence[Any]) -> Any:
        if isinstance(first, (tuple, list)):
            return first[args[1]]
        if isinstance(first, Stat):
            meta, out = self.in_meta(node), node.meta
            index = args[1]
            axis = first.axis
            if axis is not None and isinstance(index, (slice, tuple)) and isinstance(meta, TensorMeta):
                items = index if isinstance(index, tuple) else (index,)
                plain = Ellipsis not in items and all(isinstance(i, slice) for i in items)
                if plain and isinstance(out, TensorMeta) and (len(items) <= axis or items[axis] == slice(None)):
                    return first
            return collapse(first)
        return self.stat(first, "getitem")

    def split(self, node: Node, x: Stat) -> tuple[Stat, ...]:
        metas = node.meta if isinstance(node.meta, tuple) else ()
        return tuple(collapse(x) for _ in metas) if metas else (collapse(x),)

    def add(self, node: Node, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Stat:
        refs = [a for a in node.args if isinstance(a, Ref)]
        first, second = args[0], args[1] if len(args) > 1 else kwargs.get("other", 0.0)
        alpha = float(kwargs.get("alpha", 1.0))
        sign = -alpha if name in ("sub", "rsub") else alpha
        if len(refs) == 2 and refs[0] == refs[1] and isinstance(first, Stat):
            return first.scaled(1.0 + sign)
        if isinstance(second, (int, float)) and isinstance(first, Stat):
            result = shift(first, sign * float(second))
        elif isinstance(first, (int, float)) and isinstance(second, Stat):
            result = shift(second.scaled(sign), float(first))
        else:
            result = add_stats(self.raw_stat(first, name), self.raw_stat(second, name), sign)
        return result.scaled(-1.0) if name == "rsub" else result

    def mul(self, node: Node, name: str, args: Sequence[Any]) -> Any:
        if name == "neg":
            return self.raw_stat(args[0], name).scaled(-1.0)
        first, second = args[0], args[1]
        if name == "div" and isinstance(second, (int, float)):
            return self.raw_stat(first, name).scaled(1.0 / float(second))
        if name == "mul" and isinstance(second, (int, float)):
            return self.raw_stat(first, name).scaled(float(second))
        if name == "mul" and isinstance(first, (int, float)):
            return self.raw_stat(second, name).scaled(float(first))
        refs = [a for a in node.args if isinstance(a, Ref)]
        if name == "mul" and len(refs) == 2 and refs[0] == refs[1]:
            return square_stat(self.stat(first, name))
        if name == "mul":
            return mul_stats(self.stat(first, name), self.stat(second, name))
        return self.unknown(f"{name}() of two tensors", node, args)

    def cat(self, node: Node, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Stat:
        tensors = args[0]
        dim = int(arg(args, kwargs, 1, "dim", 0))
        refs = node.args[0] if node.args else ()
        metas = [self.meta.get(r.node) for r in refs if isinstance(r, Ref)]
        known = [m for m in metas if isinstance(m, TensorMeta)]
        stats = [self.stat(t, name) for t in tensors]
        ndim = getattr(node.meta, "ndim", None)
        if name == "stack" or len(known) != len(stats) or not known:
            return cat_stats([collapse(s) for s in stats], [1] * len(stats), -1, ndim)
        full = known[0].ndim
        dim = dim + full if dim < 0 else dim
        sizes = [m.shape[dim] for m in known]
        return cat_stats(stats, sizes, dim, ndim)

    def reduce(self, node: Node, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Stat:
        x = self.raw_stat(args[0], name)
        dims = arg(args, kwargs, 1, "dim", None)
        if isinstance(dims, int):
            dims = (dims,)
        keepdim = bool(arg(args, kwargs, 2, "keepdim", False))
        meta = self.in_meta(node)
        result = reduce_mean(x, meta, dims, keepdim, node.meta)
        if name == "sum" and isinstance(meta, TensorMeta):
            reduced = range(meta.ndim) if dims is None else dims
            result = result.scaled(float(math.prod(meta.shape[d] for d in reduced)))
        return result

    def pool_function(self, node: Node, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Stat:
        x = self.raw_stat(args[0], name)
        dims = int(name[-2])
        pre = self.pre_activation_of(node)
        if name.startswith("adaptive"):
            return pool(
                self.ctx, POOL_FUNCTIONS[name], x, self.in_meta(node), node.meta, kernel=None, pre_activation=pre
            )
        kernel = as_tuple(arg(args, kwargs, 1, "kernel_size"), dims)
        stride_value = arg(args, kwargs, 2, "stride", None)
        stride = as_tuple(stride_value, dims) if stride_value not in (None, [], ()) else kernel
        is_max = POOL_FUNCTIONS[name] == "max"
        return pool(
            self.ctx,
            POOL_FUNCTIONS[name],
            x,
            self.in_meta(node),
            node.meta,
            kernel=kernel,
            stride=stride,
            padding=as_tuple(arg(args, kwargs, 3, "padding", 0), dims),
            ceil_mode=bool(arg(args, kwargs, 5 if is_max else 4, "ceil_mode", False)),
            count_include_pad=bool(arg(args, kwargs, 5, "count_include_pad", True)) if not is_max else True,
            pre_activation=pre,
        )

    def sdpa(self, node: Node, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        query, key, value = (
            self.stat(arg(args, kwargs, i, n), "scaled_dot_product_attention")
            for i, n in enumerate(("query", "key", "value"))
        )
        q_meta, k_meta = self.in_meta(node, 0), self.in_meta(node, 1)
        if not isinstance(q_meta, TensorMeta) or not isinstance(k_meta, TensorMeta):
            return self.unknown("scaled_dot_product_attention() without shapes", node, args)
        head_dim = q_meta.shape[-1]
        scale = arg(args, kwargs, 6, "scale", None)
        scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
        mask = self.arg_meta(node, 3, "attn_mask")
        counts = row_counts(
            q_meta.shape[-2],
            k_meta.shape[-2],
            mask,
            bool(arg(args, kwargs, 5, "is_causal", False)),
            true_means_masked=False,
        )
        tilt = 0.0
        source = self.common_source(
            node.args[1] if len(node.args) > 1 else node.kwargs.get("key"),
            node.args[2] if len(node.args) > 2 else node.kwargs.get("value"),
        )
        if source is not None:
            fan = getattr(self.modules.get(str(source.target)), "in_features", None) if source.op == "module" else None
            if fan:
                tilt = tilt_variance(query.second_moment, key.variance, value.variance, head_dim, scale, int(fan))
        value_ref = node.args[2] if len(node.args) > 2 else node.kwargs.get("value")
        rho = self.token_corr.get(value_ref.node, 0.0) if isinstance(value_ref, Ref) else 0.0
        query, key, value = collapse(query), collapse(key), collapse(value)
        self.token_corr[node.name] = attention_token_correlation(query, key, head_dim, scale, counts, rho)
        return attention_output(query, key, value, head_dim, scale, counts, tilt, token_corr=rho)

    def common_source(self, first: Any, second: Any) -> Node | None:
        """The node both refs come from through layout operations only (keys and values of one projection)."""
        nodes = {node.name: node for node in self.graph.nodes}

        def origin(ref: Any) -> Node | None:
            node = nodes.get(ref.node) if isinstance(ref, Ref) else None
            while (
                node is not None
                and node.op in ("function", "method")
                and (
                    canonical(node) in AXIS_OPS
                    or canonical(node) in SPLIT_OPS
                    or canonical(node) in ("getitem", "contiguous")
                )
            ):
                refs = [a for a in node.args if isinstance(a, Ref)]
                node = nodes.get(refs[0].node) if refs else None
            return node

        a, b = origin(first), origin(second)
        return a if a is not None and a is b else None


def propagate(
    graph: Graph,
    model: nn.Module,
    ctx: Context,
    inputs: Sequence[Any],
    strict: bool = False,
    kept: frozenset[int] = frozenset(),
) -> Any:
    """Propagate the inputs' moments through ``graph``, filling ``ctx`` (new tensors, layer plans, notes). ``kept``:
    ids of parameters that will not be written (``init_model(keep=...)``): a node that plans one has no prediction,
    nor has anything downstream of it."""
    propagation = _Propagation(graph, model, ctx, inputs, strict)
    propagation.kept = kept
    return propagation.run()

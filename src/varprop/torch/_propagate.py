"""Walk the graph in order and apply each node's propagation rule (the dispatcher over ``_layers``, ``_ops``,
``_attention``). Values in the environment are ``Stat`` (floating tensors), ``IndexStat`` (integer tensors),
``TensorMeta`` (parameters, buffers, constants), tuples of those, or plain Python values."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from .._errors import VarpropError, VarpropTypeError, VarpropWarning
from ._activations import activation_of_function, activation_of_method, activation_of_module
from ._attention import (
    attention_output,
    multihead_attention,
    row_counts,
    tilt_variance,
    transformer_encoder,
    transformer_layer,
)
from ._direct import DirectParameter, combine, unwrap
from ._elementwise import Formula, elementwise_formulas, finite_on, formula_activation
from ._fans import coverage
from ._foreign_modules import rms_norm_proxy
from ._graph import Graph, Node, Ref, TensorMeta, map_refs
from ._layers import DROPOUT_TYPES, NORM_TYPES, POOL_TYPES, embedding, module_weight_layer, normalization, weight_layer
from ._names import (
    AXIS_OPS,
    CASTS,
    COLLAPSE_OPS,
    POOL_FUNCTIONS,
    SPLIT_OPS,
    VALUE_OPS,
    Unknown,
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
from ._ops import (
    add_stats,
    cat_stats,
    matmul_stats,
    move_axis,
    mul_stats,
    pool,
    reduce_mean,
    shift,
    softmax_stat,
    square_stat,
)
from ._plan import ActivationUse, Context, qualify
from ._residual import STREAM_OPS, analyze, block_branch_rule, register_branches
from ._stats import IndexStat, Stat, apply_activation, channel_view, collapse, scalar_stat
from ._tied import first_use, record_tied_use

__all__ = ["canonical", "output_stats", "propagate"]


class _Propagation:
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

    # -- helpers -------------------------------------------------------------------------------------------------
    def value(self, item: Any) -> Any:
        if self.unknown_as_unit:
            return map_refs(item, lambda ref: self.unit_if_unknown(unwrap(self.env[ref.node])))
        return map_refs(item, lambda ref: unwrap(self.env[ref.node]))

    @staticmethod
    def unit_if_unknown(value: Any) -> Any:
        if isinstance(value, Unknown):
            return scalar_stat(0.0, 1.0, value.ndim)
        if isinstance(value, tuple):
            return tuple(_Propagation.unit_if_unknown(item) for item in value)
        return value

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

    def unknown(self, what: str, node: Node, args: Sequence[Any]) -> Any:
        """An operation or module without a rule: said by name (``report.unknown``, a ``VarpropWarning``), and its
        output ``Unknown``: no prediction is made downstream of it (weight layers there are still initialized)."""
        self.ctx.note_unknown(what, "not propagated: the predictions downstream of it are unknown")
        self.warn_unknown(f"{what}: varprop has no rule for it; the predictions downstream of it are marked unknown")
        return Unknown(what, getattr(node.meta, "ndim", None))

    def warn_unknown(self, message: str) -> None:
        if message not in self.ctx.warnings:
            self.ctx.warn(message)
            # stacklevel 7: warn_unknown <- unknown <- operation/module <- run <- propagate <- _initialize <- init_model
            warnings.warn(message, VarpropWarning, stacklevel=8)

    def keeping(self, node: Node) -> Any:
        """A node's rule when some parameters are kept: if it planned a kept one, its rows lose their predictions
        and its output is unknown (the moments assumed a value that will not be written)."""
        planned, layers = len(self.ctx.recipes), len(self.ctx.layers)
        value = self.module(node) if node.op == "module" else self.operation(node)
        new_keys = list(self.ctx.recipes)[planned:]
        touched = [key for key in new_keys if key in self.kept]
        if not touched:
            return value
        names = ", ".join(self.ctx.param_names.get(key, "<parameter>") for key in touched)
        for plan in self.ctx.layers[layers:]:
            plan.output = None
            plan.notes.append(f"kept at its value (keep=): {names}; no prediction")
        return Unknown(f"{names} (kept)", getattr(node.meta, "ndim", None))

    def through_unknown(self, node: Node, unknown: Unknown) -> Any:
        """A node fed by an ``Unknown``: its rule runs with unit moments in place of the unknown input (so that
        weight layers get their weights, chosen as for E[x^2] = 1), each layer it plans loses its prediction, and
        its output is unknown unless it is a normalization (whose output moments do not depend on its input's)."""
        before = len(self.ctx.layers)
        self.unknown_as_unit = True
        try:
            value = self.module(node) if node.op == "module" else self.operation(node)
        finally:
            self.unknown_as_unit = False
        for plan in self.ctx.layers[before:]:
            plan.input = plan.output = None
            note = f"input unknown (downstream of {unknown.reason}): weights as for E[x^2] = 1, no prediction"
            plan.notes.append(note)
        module = self.modules.get(str(node.target)) if node.op == "module" else None
        if module is not None and (isinstance(module, NORM_TYPES) or rms_norm_proxy(module) is not None):
            return value
        return Unknown(unknown.reason, getattr(node.meta, "ndim", None))

    def formula(self, node: Node, formula: Formula, source: Stat) -> Any:
        """A node computed as an elementwise formula of one earlier node (see ``_elementwise``): exact moments of
        the formula for the source's Gaussian, or ``Unknown`` when the formula is not finite on its range (``log``
        of a zero-mean signal), or ``None`` when the core cannot parse it (the per-operation rules then apply)."""
        try:
            act = formula_activation(formula.text)
        except VarpropError:
            return None
        x = self.raw_stat(source, formula.text)
        spread = math.sqrt(float(x.var.max()) + x.shared)
        if not (finite_on(act, float(x.mean.min()), spread) and finite_on(act, float(x.mean.max()), spread)):
            what = f"{canonical(node)}() in {act.name[len('expr:') :]}"
            self.ctx.note_unknown(what, "not finite on part of its input's range: no prediction downstream")
            self.warn_unknown(
                f"{what}: not finite (NaN or infinite) on part of its input's range (mean {x.pooled_mean:.4g}, "
                f"variance {x.variance:.4g}); the predictions downstream of it are marked unknown"
            )
            return Unknown(what, getattr(node.meta, "ndim", None))
        consumers = self.users.get(node.name, [])
        inner = consumers and all(
            (f := self.formulas.get(user.name)) is not None and f.needed and f.source == formula.source
            for user in consumers
        )
        if not inner:
            self.ctx.activations.append(ActivationUse(f"{node.name} ({act.name})", act, x.variance, x.pooled_mean))
            self.ctx.pre_activation[node.name] = (act, x)
        return apply_activation(act, x, self.ctx.unit_moments)

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
            self.env[node.name] = value
        return output

    def module(self, node: Node) -> Any:
        key = str(node.target)
        module = self.modules[key]
        args = self.value(node.args)
        kwargs = self.value(node.kwargs)
        ctx = self.ctx
        first = args[0] if args else None
        tied = first_use(ctx, key, getattr(module, "weight", None))
        if isinstance(module, nn.Embedding):
            indices = constant_indices(first) if is_integer_constant(first) else first
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
        act = activation_of_module(module)
        if act is not None:
            x = self.raw_stat(first, key)
            ctx.activations.append(ActivationUse(key, act, x.variance, x.pooled_mean))
            ctx.pre_activation[node.name] = (act, x)
            return apply_activation(act, x, ctx.unit_moments)
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

    def parametrized(self, node: Node, key: str, module: nn.Module, x: Stat) -> Any:
        """A weight layer whose weight is computed by a parametrization (``weight_norm``: wav2vec2's positional
        convolution; ``orthogonal``, ...): the weight is planned like any other, then written through the
        parametrization's ``right_inverse`` into its originals (weight norm: g = the norm of the new weight, v = the
        new weight), so that the module computes exactly the planned weight."""
        ctx = self.ctx
        chain = cast(parametrize.ParametrizationList, cast(nn.ModuleDict, module.parametrizations)["weight"])
        if len(chain) != 1 or not hasattr(chain[0], "right_inverse"):
            return self.unknown(f"{key} ({type(module).__name__}: a chain of {len(chain)} parametrizations)", node, [x])
        with parametrize.cached():  # (module.weight: one tensor for the whole rule)
            weight = cast(torch.Tensor, module.weight)
            ctx.param_names[id(weight)] = qualify(key, "weight")
            out = module_weight_layer(ctx, key, module, x, self.in_meta(node), node.meta)
            value = ctx.value(weight)  # (a tensor of its own: the computed weight is no parameter to write)
            del ctx.recipes[id(weight)]
        inverse = cast(Any, chain[0]).right_inverse(value)
        values = inverse if isinstance(inverse, (tuple, list)) else (inverse,)
        names = ["original"] if len(values) == 1 else [f"original{i}" for i in range(len(values))]
        for name, new in zip(names, values, strict=True):
            original = getattr(chain, name)
            ctx.set_value(original, new.detach().to(original.dtype).reshape(original.shape).clone())
        return out

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
        direct = combine(
            self.ctx, node.name, name, raw, node.meta, [self.meta.get(getattr(r, "node", "")) for r in items]
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
            ctx.pre_activation[node.name] = (act, x)
            return apply_activation(act, x, ctx.unit_moments)
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

    def addmm(self, node: Node, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """``torch.addmm(bias, x, weight)`` on a weight of shape (in, out): Hugging Face's ``Conv1D`` (GPT-2), a
        Linear with its weight transposed (fan_in = its dim 0). The row is named for the module that owns the weight,
        and takes the residual policy's target when the product ends a branch."""
        weight = self.param(arg(node.args, node.kwargs, 2, "mat2"))
        assert weight is not None  # (checked by the caller)
        if (
            weight.dim() != 2
            or float(arg(args, kwargs, 3, "beta", 1.0)) != 1.0
            or arg(args, kwargs, 4, "alpha", 1.0) != 1.0
        ):
            return self.unknown("addmm() with a non-matrix weight or scaling (beta, alpha)", node, args)
        param_name = self.ctx.name_of(weight)
        key = param_name.rsplit(".", 1)[0] if "." in param_name else param_name
        if node.name in self.ctx.branch_target:  # (_residual names a functional branch end by its node)
            self.ctx.branch_target.setdefault(key, self.ctx.branch_target[node.name])
            self.ctx.branch_label.setdefault(key, self.ctx.branch_label.get(node.name, ""))
        owner = self.modules.get(key)
        in_ndim = getattr(self.in_meta(node, 1), "ndim", None)
        out_ndim = getattr(node.meta, "ndim", None)
        return weight_layer(
            self.ctx,
            key,
            type(owner).__name__ if owner is not None else "addmm",
            weight,
            self.stat(args[1], "addmm"),
            layout="matmul",
            fan_in=float(weight.shape[0]),
            in_channels=int(weight.shape[0]),
            in_axis=None if in_ndim is None else in_ndim - 1,
            out_axis=None if out_ndim is None else out_ndim - 1,
            out_ndim=out_ndim,
            bias=self.param(arg(node.args, node.kwargs, 0, "input")),
        )

    def functional_weight(self, node: Node, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        weight = self.param(node.args[1] if len(node.args) > 1 else node.kwargs.get("weight"))
        if name == "embedding":
            if weight is None:
                return self.unknown("embedding() with a non-parameter weight", node, args)
            holder = nn.Module()
            holder.register_parameter("weight", weight if isinstance(weight, nn.Parameter) else None)
            return embedding(self.ctx, self.ctx.name_of(weight), holder, args[0], node.meta)
        x = self.stat(args[0], name)
        out_ndim = getattr(node.meta, "ndim", None)
        in_ndim = getattr(self.in_meta(node), "ndim", None)
        if weight is None or weight.dim() < 2:
            if name in ("matmul", "mm", "bmm") and len(args) > 1:
                inner = self.in_meta(node)
                size = inner.shape[-1] if isinstance(inner, TensorMeta) else 1
                return matmul_stats(x, self.stat(args[1], name), size)
            return self.unknown(f"{name}() with a weight that is not a parameter", node, args)
        key = self.ctx.name_of(weight)
        last = None if in_ndim is None else in_ndim - 1
        out_last = None if out_ndim is None else out_ndim - 1
        bias = self.param(node.args[2] if len(node.args) > 2 else node.kwargs.get("bias"))
        if name in ("matmul", "mm", "bmm"):
            return weight_layer(
                self.ctx,
                key,
                "matmul",
                weight,
                x,
                layout="matmul",
                fan_in=float(weight.shape[-2]),
                in_channels=int(weight.shape[-2]),
                in_axis=last,
                out_axis=out_last,
                out_ndim=out_ndim,
            )
        if name == "linear":
            return weight_layer(
                self.ctx,
                key,
                "linear",
                weight,
                x,
                layout="linear",
                fan_in=float(weight.shape[1]),
                in_channels=int(weight.shape[1]),
                in_axis=last,
                out_axis=out_last,
                out_ndim=out_ndim,
                bias=bias,
            )
        dims = weight.dim() - 2
        groups = int(arg(args, kwargs, 6, "groups", 1))
        kernel = tuple(int(k) for k in weight.shape[2:])
        in_meta = self.in_meta(node)
        taps = math.prod(kernel)
        covered = float(taps)
        if isinstance(in_meta, TensorMeta):
            covered = coverage(
                kernel,
                in_meta.shape,
                stride=as_tuple(arg(args, kwargs, 3, "stride", 1), dims),
                padding=arg(args, kwargs, 4, "padding", 0),
                dilation=as_tuple(arg(args, kwargs, 5, "dilation", 1), dims),
            )
        axis = None if in_ndim is None else (0 if in_ndim == dims + 1 else 1)
        return weight_layer(
            self.ctx,
            key,
            name,
            weight,
            x,
            layout="conv",
            fan_in=float(weight.shape[1] * taps),
            in_channels=int(weight.shape[1]) * groups,
            in_axis=axis,
            out_axis=axis,
            out_ndim=out_ndim,
            groups=groups,
            fraction=covered / taps,
            bias=bias,
        )

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
        return attention_output(collapse(query), collapse(key), collapse(value), head_dim, scale, counts, tilt)

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

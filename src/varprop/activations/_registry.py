"""The activation registry and the entry point :func:`activation` (re-exported as ``varprop.activation``).

Spec grammar (strings, parsed with :mod:`ast`; literal values only, nothing is evaluated)::

    spec      := name | name "(" arguments ")" | ["expr:"] expression-in-x
    name      := a registered name, alias or torch.nn module class name; case and "_" are ignored
                 ("leaky_relu", "LeakyReLU", "leakyrelu", "swish" -> "silu", "linear" -> "identity")
    arguments := positional values in torch's order, then name=value pairs
    value     := a number (int or float, optionally signed; inf where meaningful) | a quoted string

Examples: ``"elu"``, ``"elu(alpha=0.5)"``, ``"leaky_relu(0.2)"``, ``"gelu(approximate='tanh')"``,
``"Softplus(beta=2)"``, ``"x*sigmoid(1.702*x)"``. A bare name, or a call of a name whose
arguments do not mention ``x``, is looked up in the registry (unknown names are errors with a
suggestion); every other string is a formula in ``x`` (see ``_expression.py``).

Every result's ``spec`` is canonical (name and all parameters, e.g. ``"elu(alpha=1.0)"``) and
``activation(act.spec)`` returns the very same (cached) object.
"""

from __future__ import annotations

import ast
import difflib
import functools
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import VarpropTypeError, VarpropValueError
from .._validation import check_real
from ._activation import Activation, ClosedForm, Param
from ._builtin import DEFINITIONS, ActivationDefinition, ParamSpec
from ._derivative import numerical_derivative
from .closed_forms import ClosedFormFactory
from .expression._grammar import EXPRESSION_PREFIX, MAX_LENGTH, canonical_expression, expression_activation

__all__ = [
    "ACTIVATION_ALIASES",
    "CLOSED_FORMS",
    "TORCH_MODULE_NAMES",
    "activation",
    "activation_definition",
    "closed_form_for",
    "registered_activations",
]

FloatArray = NDArray[np.float64]

#: Alternative names of registered activations (besides case, underscores and torch class names).
ACTIVATION_ALIASES: dict[str, str] = {"swish": "silu", "linear": "identity"}

#: torch.nn module class name -> canonical activation name: these class names are accepted as spec names
#: (``"LeakyReLU"``). Derived from the definitions; the torch adapter derives its own tables from them too.
TORCH_MODULE_NAMES: dict[str, str] = {
    definition.torch.module: name for name, definition in DEFINITIONS.items() if definition.torch.module is not None
}

#: canonical name -> closed-form factory, for the activations that have one. Derived from the definitions.
CLOSED_FORMS: dict[str, ClosedFormFactory] = {
    name: definition.closed_form for name, definition in DEFINITIONS.items() if definition.closed_form is not None
}

_CUSTOM_OPTIONS = ("derivative", "kinks", "features", "name", "description")
_EXPRESSION_OPTIONS = ("kinks", "features")


def _normalize(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


_LOOKUP: dict[str, str] = {
    **{_normalize(name): name for name in DEFINITIONS},
    **{_normalize(alias): target for alias, target in ACTIVATION_ALIASES.items()},
    **{_normalize(module): name for module, name in TORCH_MODULE_NAMES.items()},
}


def registered_activations() -> list[str]:
    """Canonical names of the built-in activations, sorted.

    Example:
        >>> "gelu" in registered_activations()
        True
    """
    return sorted(DEFINITIONS)


def _unknown_name(name: str) -> VarpropValueError:
    candidates = sorted({*DEFINITIONS, *ACTIVATION_ALIASES, *TORCH_MODULE_NAMES})
    lowered = {candidate.lower(): candidate for candidate in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    suggestion = f"did you mean {lowered[close[0]]!r}? " if close else ""
    return VarpropValueError(
        f"unknown activation {name!r}; {suggestion}Registered: {', '.join(registered_activations())} "
        f"(aliases: {', '.join(f'{a}->{t}' for a, t in ACTIVATION_ALIASES.items())}; torch.nn class names work too). "
        "For a formula, write it in x, e.g. 'x*sigmoid(1.702*x)'."
    )


def activation_definition(name: str) -> ActivationDefinition:
    """The registry entry of ``name`` (any accepted spelling), with its parameters and description.

    Raises:
        VarpropValueError: unknown name (the message suggests the closest registered one).

    Example:
        >>> [spec.name for spec in activation_definition("LeakyReLU").params]
        ['negative_slope']
    """
    canonical = _LOOKUP.get(_normalize(name))
    if canonical is None:
        raise _unknown_name(name)
    return DEFINITIONS[canonical]


# ----------------------------------------------------------------------------------------------
# Parameters: validation and binding


def _validate_param(definition: ActivationDefinition, spec: ParamSpec, value: Any) -> Param:
    label = f"{definition.name}: {spec.name}"
    if spec.choices:
        choices = ", ".join(repr(choice) for choice in spec.choices)
        if not isinstance(value, str):
            raise VarpropTypeError(f"{label} must be one of {choices}, got {value!r} of type {type(value).__name__}")
        if value not in spec.choices:
            raise VarpropValueError(f"{label} must be one of {choices}, got {value!r}")
        return value
    if isinstance(value, str):
        raise VarpropTypeError(f"{label} must be a real number, got the string {value!r}")
    return check_real(label, value, allow_inf=spec.allow_inf)


def _bind(definition: ActivationDefinition, positional: list[Any], keywords: dict[str, Any]) -> dict[str, Param]:
    """Match arguments to torch's parameters, validate them and fill in defaults."""
    names = [spec.name for spec in definition.params]
    valid = ", ".join(names) if names else "none"
    if len(positional) > len(names):
        raise VarpropValueError(
            f"{definition.name} takes {len(names)} parameter(s) ({valid}), got {len(positional)} positional values"
        )
    given: dict[str, Any] = dict(zip(names, positional, strict=False))
    for key, value in keywords.items():
        if key not in names:
            hint = " (inplace does not change the function; drop it)" if key == "inplace" else ""
            raise VarpropValueError(f"{definition.name} has no parameter {key!r}{hint}; valid parameters: {valid}")
        if key in given:
            raise VarpropValueError(f"{definition.name}: parameter {key!r} is given twice")
        given[key] = value
    bound: dict[str, Param] = {}
    for spec in definition.params:
        if spec.name in given:
            bound[spec.name] = _validate_param(definition, spec, given[spec.name])
        elif spec.default is None:
            missing = [s.name for s in definition.params if s.default is None and s.name not in given]
            example = ", ".join(f"{name}=0.0" for name in names)
            raise VarpropValueError(
                f"{definition.name} requires the parameter(s) {', '.join(missing)} (torch.nn.{definition.torch.module} "
                f"has no defaults), e.g. '{definition.name}({example})'"
            )
        else:
            bound[spec.name] = spec.default
    if definition.check is not None:
        definition.check(bound)
    return bound


# ----------------------------------------------------------------------------------------------
# Building an activation from its definition


def closed_form_for(name: str, params: dict[str, Param]) -> ClosedForm | None:
    """The closed form of the registered activation ``name`` with these parameters, or None if it has none.

    Parameters left out take torch's defaults (from the definition); they are not validated (``activation`` does
    that), and a factory returns None for values its formulas do not cover.

    Raises:
        VarpropValueError: unknown name (the message suggests the closest registered one).

    Example:
        >>> closed_form = closed_form_for("elu", {"alpha": 1.0})
        >>> first, second, deriv, valid = closed_form(np.array(0.0), np.array(1.0))
        >>> round(float(second), 15), bool(valid)
        (0.644945417492924, True)
    """
    definition = activation_definition(name)
    if definition.closed_form is None:
        return None
    defaults = {spec.name: spec.default for spec in definition.params if spec.default is not None}
    return definition.closed_form({**defaults, **params})


@functools.lru_cache(maxsize=512)
def _build(name: str, params: tuple[tuple[str, Param], ...]) -> Activation:
    definition = DEFINITIONS[name]
    param_dict = dict(params)
    parts = definition.build(param_dict)
    return Activation(
        name=name,
        function=parts.function,
        derivative=parts.derivative,
        params=params,
        kinks=tuple(sorted({float(kink) for kink in parts.kinks if math.isfinite(kink)})),
        features=tuple(parts.features),
        closed_form=definition.closed_form(param_dict) if definition.closed_form is not None else None,
        description=definition.description,
        extra={"torch_module": definition.torch.module},
    )


def _registered(name: str, positional: list[Any], keywords: dict[str, Any]) -> Activation:
    definition = activation_definition(name)
    bound = _bind(definition, positional, keywords)
    return _build(definition.name, tuple(bound.items()))


# ----------------------------------------------------------------------------------------------
# Spec strings


def _literal(node: ast.expr, spec: str, where: str) -> Any:
    """The value of a literal argument node (numbers, strings, bools, inf, nan), else an error."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return node.value
    if isinstance(node, ast.Name) and node.id in {"inf", "nan"}:
        return float(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _literal(node.operand, spec, where)
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
    piece = ast.get_source_segment(spec, node) or ast.dump(node)
    raise VarpropValueError(
        f"activation spec {spec!r}: {where} must be a literal number or quoted string, got {piece!r}"
    )


def _mentions_x(tree: ast.AST) -> bool:
    return any(isinstance(node, ast.Name) and node.id == "x" for node in ast.walk(tree))


def _parse_spec(spec: str) -> tuple[str, list[Any], dict[str, Any]] | None:
    """Split a registry spec into (name, positional, keywords); None if it is a formula.

    Only a bare name or a call of a name without ``x`` in it is a registry spec; everything else
    (``"x*sigmoid(x)"``, ``"2*pi"``, ``"elu[0]"``) goes to the expression parser.
    """
    text = spec.strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise VarpropValueError(
            f"could not parse activation spec {spec!r} ({exc.msg}); expected a name such as 'elu', a call such as "
            "'elu(alpha=0.5)' or a formula in x such as 'x*sigmoid(1.702*x)'"
        ) from None
    except (RecursionError, MemoryError):
        raise VarpropValueError(f"activation spec {spec[:80]!r}... is nested too deeply") from None
    body = tree.body
    if isinstance(body, ast.Name) and body.id != "x":
        return body.id, [], {}
    if not (isinstance(body, ast.Call) and isinstance(body.func, ast.Name)) or _mentions_x(body):
        return None  # a formula: the expression parser accepts it or says what is not allowed
    positional = [_literal(arg, text, f"positional argument {index + 1}") for index, arg in enumerate(body.args)]
    keywords: dict[str, Any] = {}
    for keyword in body.keywords:
        if keyword.arg is None:
            raise VarpropValueError(f"activation spec {spec!r}: '**' arguments are not allowed")
        keywords[keyword.arg] = _literal(keyword.value, text, f"parameter {keyword.arg!r}")
    return body.func.id, positional, keywords


# ----------------------------------------------------------------------------------------------
# Custom callables


def _check_kinks(kinks: Any) -> tuple[float, ...]:
    if isinstance(kinks, (str, bytes)) or not isinstance(kinks, Iterable):
        raise VarpropTypeError(f"kinks must be a sequence of real numbers, got {kinks!r}")
    return tuple(sorted({check_real("kink", kink) for kink in kinks}))


def _check_features(features: Any) -> tuple[tuple[float, float], ...]:
    if isinstance(features, (str, bytes)) or not isinstance(features, Iterable):
        raise VarpropTypeError(f"features must be a sequence of (x, width) pairs, got {features!r}")
    result = []
    for feature in features:
        if isinstance(feature, (str, bytes)) or not isinstance(feature, Iterable) or len(tuple(feature)) != 2:
            raise VarpropTypeError(f"each feature must be an (x, width) pair, got {feature!r}")
        location, width = tuple(feature)
        result.append(
            (check_real("feature location", location), check_real("feature width", width, minimum=0.0, strict=True))
        )
    return tuple(result)


def _vectorized(function: Callable[..., Any], role: str) -> Callable[[FloatArray], FloatArray]:
    """Wrap a user callable so that it maps a float64 array to a float64 array of the same shape."""

    def wrapped(x: FloatArray) -> FloatArray:
        points = np.asarray(x, dtype=np.float64)
        return np.array(np.broadcast_to(np.asarray(function(points), dtype=np.float64), points.shape))

    probe = np.array([-2.5, -1.0, -0.1, 0.0, 0.1, 1.0, 2.5])
    try:
        with np.errstate(all="ignore"):
            result = np.asarray(function(probe))
    except Exception as exc:
        raise VarpropTypeError(
            f"the custom {role} {function!r} failed on a float64 array ({type(exc).__name__}: {exc}); it must be "
            "vectorized with numpy (e.g. np.tanh rather than math.tanh)"
        ) from exc
    if result.shape not in {(), probe.shape} or not (
        np.issubdtype(result.dtype, np.floating) or np.issubdtype(result.dtype, np.integer)
    ):
        raise VarpropTypeError(
            f"the custom {role} {function!r} must return a real array of the input's shape {probe.shape}, "
            f"got shape {result.shape} and dtype {result.dtype}"
        )
    return wrapped


def _custom(function: Callable[..., Any], options: dict[str, Any]) -> Activation:
    unknown = sorted(set(options) - set(_CUSTOM_OPTIONS))
    if unknown:
        raise VarpropValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for a custom activation; "
            f"valid: {', '.join(_CUSTOM_OPTIONS)}"
        )
    kinks = _check_kinks(options.get("kinks", ()))
    features = _check_features(options.get("features", ((0.0, 1.0),)))
    name = options.get("name", f"custom:{getattr(function, '__name__', type(function).__name__)}")
    if not isinstance(name, str) or not name:
        raise VarpropTypeError(f"name must be a non-empty string, got {name!r}")
    description = options.get("description", "custom function")
    if not isinstance(description, str):
        raise VarpropTypeError(f"description must be a string, got {description!r}")
    wrapped = _vectorized(function, "function")
    derivative = options.get("derivative")
    if derivative is not None:
        if not callable(derivative):
            raise VarpropTypeError(f"derivative must be a callable, got {derivative!r}")
        method = "given"
        wrapped_derivative = _vectorized(derivative, "derivative")
    else:
        length_scale = min((width for _, width in features), default=1.0)
        # The raw callable, not the float64 wrapper: the complex step needs complex input to pass through.
        wrapped_derivative, method = numerical_derivative(function, kinks=kinks, length_scale=min(length_scale, 1.0))
    return Activation(
        name=name,
        function=wrapped,
        derivative=wrapped_derivative,
        kinks=kinks,
        features=features,
        description=description,
        extra={"custom": True, "derivative_method": method, "callable": function},
    )


# ----------------------------------------------------------------------------------------------
# Entry point


def activation(spec: str | Activation | Callable[..., Any], /, **params: Any) -> Activation:
    """Look up, parametrize or build an :class:`~varprop.Activation`.

    Accepts a registered name with optional parameters (torch's names, order and defaults), a
    torch.nn module class name, a formula in ``x``, an existing ``Activation`` (returned as is) or
    a numpy-vectorized callable.

    Args:
        spec: ``"elu"``, ``"elu(alpha=0.5)"``, ``"LeakyReLU(0.2)"``, ``"gelu(approximate='tanh')"``,
            ``"x*sigmoid(1.702*x)"``, an ``Activation``, or a callable such as ``np.tanh``.
        **params: for a registered name, its parameters (``activation("elu", alpha=0.5)``); for a
            formula, ``kinks`` and ``features``; for a callable, ``derivative`` (else computed by
            complex step or Richardson extrapolation, see ``_derivative.py``), ``kinks``,
            ``features`` (default ``[(0, 1)]``), ``name`` and ``description``.

    Returns:
        The activation. Registered and formula activations are cached: equal specs give the same
        object, and ``activation(act.spec) is act``.

    Raises:
        VarpropValueError: unknown name (with the closest match), unknown parameter (with the valid
            ones), value out of range, unparsable spec or disallowed formula.
        VarpropTypeError: a parameter of the wrong type (bools are refused), or ``spec`` of an
            unsupported type.

    Example:
        >>> activation("elu(alpha=0.5)").spec
        'elu(alpha=0.5)'
        >>> activation("LeakyReLU", negative_slope=0.2) is activation("leaky_relu(0.2)")
        True
    """
    if isinstance(spec, Activation):
        if params:
            raise VarpropValueError(
                f"parameters {sorted(params)} cannot be applied to the existing activation {spec.spec!r}; "
                "pass its name instead, e.g. activation('elu', alpha=0.5)"
            )
        return spec
    if isinstance(spec, str):
        if len(spec) > MAX_LENGTH:
            raise VarpropValueError(f"activation spec is {len(spec)} characters long; at most {MAX_LENGTH} are allowed")
        if spec.strip().startswith(EXPRESSION_PREFIX):
            return _expression(spec, params)
        parsed = _parse_spec_cached(spec)
        if parsed is None:
            return _expression(spec, params)
        name, positional, cached_keywords = parsed
        keywords = dict(cached_keywords)
        for key, value in params.items():
            if key in keywords:
                raise VarpropValueError(f"parameter {key!r} is given both in the spec {spec!r} and as a keyword")
            keywords[key] = value
        return _registered(name, list(positional), keywords)
    if callable(spec):
        return _custom(spec, params)
    raise VarpropTypeError(
        f"an activation must be a name or spec string, an Activation or a callable, got {spec!r} "
        f"of type {type(spec).__name__}"
    )


@functools.lru_cache(maxsize=1024)
def _parse_spec_cached(spec: str) -> tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]] | None:
    """``_parse_spec`` with the parse kept (as immutable tuples): a scalar ``varprop.moments(spec, ...)``
    call would otherwise spend more time in ``ast.parse`` than in a closed form."""
    parsed = _parse_spec(spec)
    if parsed is None:
        return None
    name, positional, keywords = parsed
    return name, tuple(positional), tuple(keywords.items())


def _expression(text: str, options: dict[str, Any]) -> Activation:
    unknown = sorted(set(options) - set(_EXPRESSION_OPTIONS))
    if unknown:
        raise VarpropValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for a formula; valid: {', '.join(_EXPRESSION_OPTIONS)}"
        )
    kinks = _check_kinks(options["kinks"]) if "kinks" in options else None
    features = _check_features(options["features"]) if "features" in options else None
    if kinks is None and features is None:
        return _cached_expression(canonical_expression(text))
    return expression_activation(text, kinks=kinks, features=features)


@functools.lru_cache(maxsize=256)
def _cached_expression(text: str) -> Activation:
    return expression_activation(text)

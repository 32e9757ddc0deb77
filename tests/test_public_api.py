"""The public surface: a small root, the topics in subpackages, and the root names that moved still importable.

The root keeps the everyday names; every other name of varprop 0.1's root lives in ``varprop.dynamics``,
``varprop.selu`` or ``varprop.literature``, and the old root name returns the same object with a
``DeprecationWarning`` that names the new place (removed in the next release).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import varprop
import varprop.activations
import varprop.dynamics
import varprop.gains
import varprop.gaussian
import varprop.literature
import varprop.selu

# The root of varprop 0.1 (43 names), by where each name lives now.
OLD_ROOT_MOVED = {
    "varprop.dynamics": [
        "NEUTRAL_TOLERANCE", "CorrelationMap", "CriticalPoint", "DriftPrediction", "EdgeOfChaos", "FixedPoint",
        "JacobianSpectrumPrediction", "MeanVarianceMap", "PhaseDiagram", "PlainNetworkSimulation", "Stability",
        "VarianceMap", "arccos_cross_moment", "correlation_map", "critical_point", "cross_moment", "edge_of_chaos",
        "edge_of_chaos_curve", "jacobian_moments", "mean_variance_map", "phase_diagram", "predict_jacobian_spectrum",
        "sample_jacobian_singular_values", "variance_map",
    ],
    "varprop.selu": ["selu_jacobian", "selu_moment_map", "selu_parameters"],
    "varprop.literature": ["ReproRow", "ReproTable", "reproduce_table"],
}  # fmt: skip
# The root of issue 9's first cut (21 names) kept twelve; these nine moved.
ROOT_21_MOVED = {
    "varprop.dynamics": ["fixed_point", "predict_drift", "simulate_plain_network"],
    "varprop.gaussian": ["MonteCarloMoments", "deriv_mean", "monte_carlo_moments"],
    "varprop.activations": ["registered_activations"],
    "varprop.gains": ["truncated_normal_scale", "uniform_bound"],
}
ROOT = [
    "Activation", "ConvergenceError", "Moments", "VarpropError", "VarpropTypeError", "VarpropValueError",
    "VarpropWarning", "activation", "gain", "moments", "stability", "weight_std",
]  # fmt: skip
MOVED = [
    (module, name) for moved in (OLD_ROOT_MOVED, ROOT_21_MOVED) for module, names in moved.items() for name in names
]


def test_root_keeps_the_everyday_names() -> None:
    assert sorted(varprop.__all__) == sorted(ROOT)


@pytest.mark.parametrize(("module", "name"), MOVED)
def test_moved_root_name_warns_and_is_the_same_object(module: str, name: str) -> None:
    new = getattr(sys.modules[module], name)
    with pytest.warns(DeprecationWarning, match=rf"^varprop\.{name} moved to {module}\.{name};"):
        old = getattr(varprop, name)
    assert old is new
    assert name in sys.modules[module].__all__
    assert name not in varprop.__all__


def test_from_import_of_a_moved_name_warns() -> None:
    with pytest.warns(DeprecationWarning, match=r"varprop\.edge_of_chaos moved to varprop\.dynamics"):
        from varprop import edge_of_chaos
    assert edge_of_chaos is varprop.dynamics.edge_of_chaos


def test_gaussian_package_does_not_hide_the_moments_function() -> None:
    """The Gaussian-expectation package is ``varprop.gaussian``; ``varprop.moments`` is the function (before issue 9
    a package ``varprop.moments`` was hidden by it: ``import varprop.moments as m`` gave the function)."""
    package = importlib.import_module("varprop.gaussian")
    assert isinstance(package, types.ModuleType)
    assert package.moments is varprop.moments
    assert isinstance(varprop.moments, types.FunctionType)
    with pytest.raises(ModuleNotFoundError, match=r"varprop\.moments"):
        importlib.import_module("varprop.moments")


def test_unknown_root_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"module 'varprop' has no attribute 'edge_of_choas'"):
        varprop.edge_of_choas  # noqa: B018


def test_star_import_gives_the_root_names_without_warnings() -> None:
    code = (
        "import warnings; warnings.simplefilter('error'); "
        "namespace = {}; exec('from varprop import *', namespace); "
        "import varprop; names = sorted(k for k in namespace if not k.startswith('__')); "
        "assert names == sorted(varprop.__all__), names"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("package", [varprop, varprop.dynamics, varprop.selu, varprop.literature, varprop.gaussian])
def test_all_names_exist_and_are_documented(package: object) -> None:
    for name in package.__all__:  # type: ignore[attr-defined]
        value = getattr(package, name)
        if callable(value):
            assert value.__doc__, f"{package.__name__}.{name} has no docstring"  # type: ignore[attr-defined]

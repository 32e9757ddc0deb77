"""Every moment's error estimate bounds its true error, over the 40-digit mpmath reference grid (issue 12).

Reference: ``tests/reference/moments_reference.json`` (regenerate with
``python tests/reference/generate_moments.py --processes 2 --check 60``): 36 activations x 6 means x 7
variances. For each entry, both ``method="auto"`` (closed forms where valid) and ``method="quadrature"``:

    |value - reference| <= estimate + (the reference's own uncertainty, quad_error x scale),
    estimate <= max(1e4 x true error, 1e-10 x scale)       (not absurdly loose; 3e3 where the rules
                                                          do not converge: sin at var 100 by quadrature),

with scale = E[|phi|] for E[phi] and the moment itself for E[phi^2], E[phi'^2]. Singular formulas and
oscillatory cross moments are covered in test_singular.py and test_cross_moment_exact.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mpmath as mp
import pytest

import varprop

REFERENCE = Path(__file__).parent / "reference" / "moments_reference.json"
ENTRIES: list[dict[str, Any]] = json.loads(REFERENCE.read_text())["entries"]
SPECS = sorted({entry["spec"] for entry in ENTRIES})


@pytest.mark.parametrize("method", ["auto", "quadrature"])
@pytest.mark.parametrize("spec", SPECS)
def test_estimate_bounds_true_error_on_reference_grid(spec: str, method: str) -> None:
    failures = []
    for entry in (entry for entry in ENTRIES if entry["spec"] == spec):
        result = varprop.moments(spec, var=entry["var"], mean=entry["mean"], with_error=True, method=method)  # type: ignore[arg-type]
        assert result.error is not None
        references = [float(mp.mpf(entry[key])) for key in ("first_moment", "second_moment", "deriv_second_moment")]
        scales = [float(mp.mpf(entry["abs_first_moment"])), references[1], references[2]]
        values = [result.mean, result.second_moment, result.deriv_second_moment]
        estimates = [result.error[0], result.error[1], result.error[3]]
        for name, value, estimate, reference, scale in zip(
            ("E[phi]", "E[phi^2]", "E[phi'^2]"), values, estimates, references, scales, strict=True
        ):
            true_error = abs(float(value) - reference)
            slack = float(entry["quad_error"]) * scale
            if not true_error <= float(estimate) + slack:
                failures.append(
                    f"{name} at mean={entry['mean']}, var={entry['var']}: true {true_error:.3e} > {estimate:.3e}"
                )
            if not float(estimate) <= max(1e4 * true_error, 1e-10 * scale):
                failures.append(
                    f"{name} at mean={entry['mean']}, var={entry['var']}: loose {estimate:.3e} vs {true_error:.3e}"
                )
    assert not failures, "\n".join(failures[:10])

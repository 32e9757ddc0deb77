"""The report's ``index.html``: one self-contained page (figures inlined as PNG, SVG files linked)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from .. import __version__
from ._figures import SEED_SAMPLED_SECOND_MOMENT, is_seed_case, pretty
from ._summary import ReportSummary

__all__ = ["render_html"]

# The page fits any width from a phone's up: text wraps (long code and formulas included), figures
# scale to the column, and below 720 px every table turns into one block per row, each cell
# labelled with its column's header (data-label), so that no table is wider than the page.
_CSS = """
*, *::before, *::after { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1080px; margin: 2em auto;
       padding: 0 1em; color: #1d1d1f; overflow-wrap: break-word; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
code, .num { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.92em; }
code { overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 0.8em 0; max-width: 100%; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #e5e5e5; text-align: left; vertical-align: top; }
th { background: #f6f6f6; font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
td.num small.predicted { display: block; color: #777; }
.lead { color: #555; }
.key { font-size: 1.1em; background: #f3f8ff; border-left: 4px solid #1f77b4; padding: 0.6em 1em; }
.note { background: #fff8e5; border-left: 4px solid #ff9f1c; padding: 0.5em 1em; }
figure { margin: 1em 0; }
figure img { display: block; width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.92em; }
@media (max-width: 720px) {
  table, tbody, tr, td { display: block; width: 100%; }
  thead { display: none; }
  tr { border-bottom: 1px solid #ccc; padding: 0.3em 0; }
  td, td.num { border: none; padding: 0.1em 0.2em; text-align: left; white-space: normal; }
  td::before { content: attr(data-label) ": "; font-weight: 600; }
  td.num small.predicted { display: inline; margin-left: 0.5em; }
  td.num small.predicted::before { content: "predicted "; }
}
"""


_NUMBER_CLASS = ' class="num"'


def _e(text: object) -> str:
    return html.escape(str(text))


def _num(value: float, digits: int = 15) -> str:
    return "—" if not math.isfinite(value) else f"{value:.{digits}g}"


def _sci(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.1e}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], text_columns: Sequence[int] = (0,)) -> str:
    """An HTML table; cells are already escaped; columns not in ``text_columns`` are right-aligned numbers.

    Every cell carries its column's header as ``data-label``: narrow screens show it beside the value.
    """
    head = "".join(f"<th>{_e(cell)}</th>" for cell in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td data-label="{_e(label)}"{"" if index in text_columns else _NUMBER_CLASS}>{cell}</td>'
            for index, (label, cell) in enumerate(zip(header, row, strict=True))
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(paths: Sequence[Path], caption: str, alt: str) -> str:
    png = next(path for path in paths if path.suffix == ".png")
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    links = " · ".join(f'<a href="{_e(path.name)}">{_e(path.suffix[1:].upper())}</a>' for path in paths)
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{caption} ({links})</figcaption></figure>"
    )


def _answer(summary: ReportSummary) -> str:
    n = summary.width
    scales = summary.scales
    rows = [
        ("n·Var[w] = q / E[φ²]", _num(summary.fan_var), "variance × fan_in"),
        ("gain = std[w]·√n = √(q / E[φ²])", _num(summary.gain), "standard deviation × √fan_in"),
        ("backward gain = 1 / √E[φ′²]", _num(summary.backward_gain), "standard deviation × √fan_out"),
        (f"Var[w] at n = {n}", _num(scales["weight_variance"], 10), "variance"),
        (f"std[w] at n = {n}", _num(scales["weight_std"], 10), "standard deviation (normal init)"),
        (
            f"truncated normal at n = {n}",
            _num(scales["truncated_normal_std"], 10),
            "std of the normal before the ±2 std cut (the truncated weights then have std[w])",
        ),
        (f"uniform bound a at n = {n}", _num(scales["uniform_bound"], 10), "U(−a, a); its std a/√3 = std[w]"),
    ]
    table = _table(("quantity", "value", "what it is"), ([_e(a), b, _e(c)] for a, b, c in rows), text_columns=(0, 2))
    return (
        f'<p class="key">Initialize a layer with fan_in n that follows <code>{_e(summary.activation)}</code> '
        f"with zero-mean weights of <b>variance {_num(summary.fan_var, 6)}/n</b>, i.e. "
        f"<b>standard deviation {_num(summary.gain, 6)}/√n</b>; the pre-activation variance then stays "
        f"q = {summary.var:g} from layer to layer (He et al. 2015: Var[y′] = n·Var[w]·E[φ(y)²]).</p>{table}"
    )


def _seed_section(summary: ReportSummary) -> str:
    if not is_seed_case(summary):
        return ""
    last = summary.monte_carlo[-1] if summary.monte_carlo else None
    sampled = (
        f" Our own {last.samples:,}-sample estimate is {last.estimate:.6f} ± {last.standard_error:.1e} "
        f"(error {last.abs_error:.1e}, {last.seconds:.2f} s); the exact value has error estimate "
        f"{_sci(float(summary.exact.error[1]) if summary.exact.error else math.nan)}."
        if last
        else ""
    )
    return f"""
<h2>The seed answer's 1.55, in context</h2>
<p>The Cross Validated answer that started varprop sampled E[elu(z)²] for z ~ N(0, 1) and got
≈ {SEED_SAMPLED_SECOND_MOMENT}; the exact value is
<span class="num">{_num(float(summary.exact.second_moment))}</span>.{sampled}
Its inverse, <span class="num">{_num(summary.fan_var)}</span>, is <b>n·Var[w]</b>: a variance.
The answer then wrote “Var[w] = √(1.55/n)”, which is the <b>standard deviation</b>,
std[w] = <span class="num">{_num(summary.gain)}</span>/√n. Its closed form (the “Edit”) is garbled; varprop's
closed form and quadrature agree to {_sci(summary.closed_form_gap) if summary.closed_form_gap is not None else "—"}.
The answer is right that the constant depends on q: it tends to 1 as q → 0 and to 1/2 as q → ∞ (see the q-curve).</p>
"""


def _moments_section(summary: ReportSummary) -> str:
    exact, quad, closed = summary.exact, summary.quadrature, summary.closed_form
    quad_err = quad.error or (math.nan,) * 4
    names = ("E[φ(y)]", "E[φ(y)²]", "Var[φ(y)]", "E[φ′(y)²]")
    fields = ("mean", "second_moment", "variance", "deriv_second_moment")
    rows = []
    for index, (name, field) in enumerate(zip(names, fields, strict=True)):
        q_value = float(getattr(quad, field))
        if closed is not None:
            c_value = float(getattr(closed, field))
            closed_cells = [_num(c_value), _sci(abs(c_value - q_value))]
        else:
            closed_cells = ["no closed form", "—"]
        rows.append([_e(name), _num(q_value), _sci(float(quad_err[index])), *closed_cells])
    table = _table(("moment", "quadrature", "error estimate", "closed form", "|closed − quadrature|"), rows)
    mc_rows = [
        [
            f"{point.samples:.0e}",
            _num(point.estimate, 8),
            _sci(point.standard_error),
            _sci(point.abs_error),
            f"{point.abs_error / point.standard_error:.2f}" if point.standard_error > 0 else "—",
            f"{point.seconds:.3f} s",
        ]
        for point in summary.monte_carlo
    ]
    mc_table = _table(("samples", "estimate of E[φ²]", "standard error", "|error|", "|error| / s.e.", "time"), mc_rows)
    figure = (
        _figure(
            summary.figures["moments"],
            "Left: Monte Carlo estimates with 95% error bars against the exact value. Right: their error "
            "(∝ 1/√N) against the error of the exact computation.",
            "Monte Carlo convergence",
        )
        if "moments" in summary.figures
        else ""
    )
    return f"""
<h2>Exact moments vs closed form vs Monte Carlo</h2>
<p>y ~ N(0, {summary.var:g}). <code>varprop.moments</code> uses a closed form where the activation has one
and a graded Gauss–Legendre rule split at the activation's kinks otherwise (here: {_e(exact.method)}).
Both are shown, with the quadrature's (pessimistic) error estimate.</p>
{table}
<p>Monte Carlo (the seed answer's method), <code>varprop.gaussian.monte_carlo_moments</code>:</p>
{mc_table}
{figure}
"""


def _curve_section(summary: ReportSummary) -> str:
    curve = summary.curve

    def limit(value: float | None) -> str:
        return "no finite limit" if value is None else _num(value, 6)

    return f"""
<h2>The constant depends on q: the q-curve</h2>
<p>c(q) = E[φ(√q z)²]/q is the factor by which one layer with n·Var[w] = 1 scales the variance q;
the variance-preserving gain at q is 1/√c(q). Here c(q) → {limit(curve.small_q_limit)} as q → 0 and
c(q) → {limit(curve.large_q_limit)} as q → ∞.</p>
{_figure(summary.figures["qcurve"], "c(q) and gain(q) over q ∈ [1e-4, 1e4]; dashed: the limits.", "q-curve")}
"""


def _stability_section(summary: ReportSummary) -> str:
    if summary.stability is None:
        return ""
    stability = summary.stability
    figure = (
        _figure(summary.figures["variance_map"], "The variance map and its fixed points.", "variance map")
        if "variance_map" in summary.figures
        else ""
    )
    rows = [[_num(q, 8), _num(slope, 6), _e(kind)] for q, slope, kind in stability.fixed_points]
    verdict = stability.verdict[:1].upper() + stability.verdict[1:]
    header = ("fixed point q*", "slope F′(q*)", "stability")
    table = _table(header, rows, text_columns=(2,)) if rows else "<p>No fixed point found.</p>"
    return f"""
<h2>Stability of the variance map</h2>
<p>With varprop's weights, n·Var[w] = {_num(summary.fan_var, 6)}, the variance map
F(q) = n·Var[w]·E[φ(√q z)²] (Poole et al. 2016) has q = {summary.var:g} as a fixed point by construction.
Whether a deep network stays there depends on the slope F′ (<code>varprop.stability</code>):
at q = {summary.var:g} it is {_num(stability.slope, 6)} (<b>{_e(stability.kind)}</b>);
the gradient's second moment changes by χ₁ = {_num(stability.chi1, 6)} per layer
(<b>{_e(stability.phase)}</b>: ordered below 1, critical at 1, chaotic above; Schoenholz et al. 2017).
{_e(verdict)}.</p>
{table}
{figure}
"""


def _spectrum_section(summary: ReportSummary) -> str:
    if "spectrum" not in summary.figures:
        return ""
    caption = (
        "Singular values of the input-output Jacobian J = D<sub>L</sub>W<sub>L</sub>…D<sub>1</sub>W<sub>1</sub>: "
        "one sampled net per weight distribution "
        "(<code>varprop.dynamics.sample_jacobian_singular_values</code>, shaded) and the free-probability "
        "prediction (<code>varprop.dynamics.predict_jacobian_spectrum</code>, line; dotted: "
        "its 10th and 90th percentiles)."
    )
    return f"""
<h2>The Jacobian's singular values</h2>
<p>The same plain network with varprop's gain keeps the variance, but its Jacobian can still stretch some
directions and crush others (Pennington, Schoenholz &amp; Ganguli 2017): with Gaussian weights the singular
values spread over many decades as the depth grows; orthogonal weights with χ₁ = 1 and small q keep them near 1
(dynamical isometry).</p>
{_figure(summary.figures["spectrum"], caption, "Jacobian spectrum")}
"""


def _network_section(summary: ReportSummary) -> str:
    if not summary.schemes:
        return ""
    layers = sorted({layer for layer in (1, 10, 25, summary.depth) if layer <= summary.depth})
    header = ["initialization", "std[w]·√n", "n·Var[w]"] + [f"layer {layer}" for layer in layers]
    rows = []
    for scheme in summary.schemes:
        cells = [_e(pretty(scheme.label)), _num(scheme.std_times_sqrt_fan, 6), _num(scheme.std_times_sqrt_fan**2, 6)]
        for layer in layers:
            simulated = float(scheme.variances[layer - 1])
            text = f"{simulated:.4g}"
            if scheme.predicted is not None:
                text += f'<small class="predicted">{float(scheme.predicted[layer - 1]):.4g}</small>'
            cells.append(text)
        rows.append(cells)
    figure = _figure(
        summary.figures["depth"],
        "Pre-activation variance per layer: simulated median (solid) with the 16–84% band over inputs, and the "
        "prediction (dotted); right: zoom.",
        "depth",
    )
    return f"""
<h2>A deep plain network</h2>
<p>{summary.depth} layers y<sub>l</sub> = W<sub>l</sub> φ(y<sub>l−1</sub>) of width {summary.width}
(fan_in = fan_out = {summary.width}, no biases), fed {summary.batch} Gaussian inputs of variance {summary.var:g}
(seed {summary.seed}), simulated in numpy by <code>varprop.dynamics.simulate_plain_network</code>. The first layer
has Var[w] = 1/n, so every network starts at q₁ = {summary.var:g} (its input is not an activation's output);
layers 2…{summary.depth} use the scheme's weight standard deviation, with Gaussian weights (only the variance
of the weights enters the variance of the next layer). Shown: the median over inputs of the per-layer variance
mean<sub>i</sub> y<sub>l,i</sub>², and below it, in grey, <code>varprop.dynamics.predict_drift</code>'s prediction.
PyTorch's default for <code>nn.Linear</code> is U(±1/√fan_in) (<code>kaiming_uniform_</code> with a = √5),
whose standard deviation is 1/√(3·fan_in).</p>
{_table(header, rows)}
{figure}
"""


def render_html(summary: ReportSummary) -> str:
    """The report page for ``summary`` (its figures must already be written)."""

    command = (
        f"varprop report '{summary.activation}' --var {summary.var:g} --depth {summary.depth} "
        f"--width {summary.width} --batch {summary.batch} --seed {summary.seed}"
    )
    notes = "".join(f'<p class="note">{_e(note)}</p>' for note in summary.notes)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>varprop report: {_e(summary.activation)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>varprop report: <code>{_e(summary.activation)}</code></h1>
<p class="lead">Variance-preserving initialization at pre-activation variance q = {summary.var:g}.
varprop {_e(__version__)}, {summary.seconds:.1f} s. Reproduce with <code>{_e(command)}</code>.</p>
{notes}
<h2>The answer</h2>
{_answer(summary)}
{_seed_section(summary)}
{_moments_section(summary)}
{_curve_section(summary)}
{_stability_section(summary)}
{_network_section(summary)}
{_spectrum_section(summary)}
<h2>References</h2>
<ul>
<li>K. He, X. Zhang, S. Ren, J. Sun (2015). Delving deep into rectifiers. ICCV. (Var[y′] = n·Var[w]·E[x²].)</li>
<li>X. Glorot, Y. Bengio (2010). Understanding the difficulty of training deep feedforward neural networks.
AISTATS.</li>
<li>B. Poole et al. (2016); S. Schoenholz et al. (2017): the variance map and its fixed points.</li>
<li>The seed: Cross Validated answer 320443 to question 229885.</li>
</ul>
</body>
</html>
"""

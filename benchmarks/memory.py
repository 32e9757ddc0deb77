"""Peak memory of initializing a large model (reset_parameters, init_model, meta + to_empty), one process per route.

Routes: build + reset_parameters (and + one forward pass), build + init_model (analytic, calibrated), the same three
after a meta build + to_empty, and init_model on meta parameters (a plan), each measured in its own fresh process.

Run: ``python benchmarks/memory.py`` (about 6 minutes on 2 CPU cores); ``--device cuda`` on a GPU machine (skips
cleanly without one); ``--write`` replaces the "Memory" section of docs/benchmarks.md (``memory`` for the CPU,
``memory-cuda`` for CUDA). Prints that section (markdown) on stdout.

Every route runs in a fresh process: this script again, ``--child <json>``, with the same imports (torch, varprop,
varprop.torch). What is measured in it:

- peak RSS: the kernel's high-water mark of the process's resident memory (``VmHWM`` in ``/proc/self/status``;
  ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` where that file is missing), over the whole process;
- CUDA (``--device cuda``): ``torch.cuda.max_memory_allocated()`` over the whole process (the CUDA context and the
  caching allocator's reserve are not allocations);
- baseline: the same measure in a process that only imports (and, with CUDA, creates its context);
- extra peak = peak - (baseline + parameter bytes), also as a % of the parameter bytes: what the route holds beyond
  the model itself (0% is the floor: the parameters must be resident at the end);
- over the peer = peak - the peak of the route a user runs instead (``PEERS``: reset_parameters, and for calibration
  one forward pass more; built the same way): what init_model holds beyond the one-time costs that initializing and
  running the model pay anyway (a first forward pass's kernel code pages and BLAS work space, a first meta
  operation's imports);
- where the peak falls: the build's own high-water mark, then (``/proc/self/clear_refs`` reset) the peak of the step
  alone; and, sampled every 2 ms by a thread while ``init_model`` runs, the highest RSS in each of its phases (the
  boundaries from ``report.timings``: trace, propagate, calibrate, write).

Models: ``nn.TransformerEncoder`` of pre-norm ``nn.TransformerEncoderLayer`` (batch_first, dropout 0.1 as torch's
default), d_model 1024, 8 layers, 16 heads, FFN 4096: 100.8M parameters (403 MB in float32); and d_model 2048, 20
layers, 16 heads, FFN 8192: 1.01B parameters (4.03 GB), on the meta device only unless ``--large`` (CPU) or CUDA;
and a tiny one (d_model 64, 1 layer) whose extra peak is the one-time cost of a first call (lazy imports, lattices). The
encoder's constructor deep-copies a template layer (its peak would hold one layer more than the model); here the
encoder is made with one layer and the others appended, so that the build's own peak is the model. Example input:
a shape (8, 64, d_model); calibration: ``calibrate="gaussian"`` on that shape.
"""

# ruff: noqa: E402 - the imports follow the thread settings, which must precede numpy and torch
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import argparse
import functools
import json
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import varprop.torch as vt
from _docs import replace_section  # benchmarks/_docs.py (the script's directory is on sys.path)
from models import machine, reset
from varprop.torch._calibration_batch import calibration_batch
from varprop.torch.propagation.calibrate import NoDropout

MB = 1e6
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class Transformer:
    """A stack of pre-norm ``nn.TransformerEncoderLayer`` (batch_first) with an example of ``batch x tokens``."""

    d_model: int
    layers: int
    heads: int
    ffn: int
    batch: int = 8
    tokens: int = 64

    def parameters(self) -> int:
        d, f = self.d_model, self.ffn
        per_layer = (3 * d * d + 3 * d) + (d * d + d) + (f * d + f) + (d * f + d) + 4 * d
        return self.layers * per_layer

    def title(self) -> str:
        count = self.parameters()
        size = f"{count / 1e6:.1f}M" if count >= 1e6 else f"{count:,}"
        return (
            f"nn.TransformerEncoder, d_model {self.d_model}, {self.layers} layer{'s' if self.layers > 1 else ''}, "
            f"{self.heads} heads, FFN {self.ffn} ({size} parameters)"
        )

    def shape(self) -> tuple[int, int, int]:
        return (self.batch, self.tokens, self.d_model)

    def build(self, device: str) -> nn.TransformerEncoder:
        def layer() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(self.d_model, self.heads, self.ffn, batch_first=True, norm_first=True)

        with torch.device(device):
            model = nn.TransformerEncoder(layer(), 1, enable_nested_tensor=False)  # its template is freed here
            for _ in range(self.layers - 1):
                model.layers.append(layer())
        model.num_layers = self.layers
        return model


MODELS = {
    "100M": Transformer(d_model=1024, layers=8, heads=16, ffn=4096),
    "1B": Transformer(d_model=2048, layers=20, heads=16, ffn=8192),
    "tiny": Transformer(d_model=64, layers=1, heads=4, ffn=256),
}

# route -> (what it does, built on meta)
ROUTES: dict[str, tuple[str, bool]] = {
    "baseline": ("imports only (torch, varprop, varprop.torch)", False),
    "reset": ("build + `reset_parameters`", False),
    "analytic": ("build + `init_model(model, shape)`", False),
    "calibrated": ("build + `init_model(model, shape, calibrate='gaussian')`", False),
    "forward": ("build + `reset_parameters` + one forward pass (on the calibration batch)", False),
    "meta-reset": ("meta build + `to_empty` + `reset_parameters`", True),
    "meta-forward": ("meta build + `to_empty` + `reset_parameters` + one forward pass", True),
    "meta-analytic": ("meta build + `to_empty` + `init_model(model, shape)`", True),
    "meta-calibrated": ("meta build + `to_empty` + `init_model(..., calibrate='gaussian')`", True),
    "plan": ("meta build + `init_model(model, shape)` on the meta parameters (a plan, nothing to write)", True),
}

# Each init_model route's peer: what a user runs instead (torch's own initialization; for calibration, plus the one
# forward pass that calibration is). A process's first forward pass holds memory that later ones do not (pages of the
# kernels' code, the BLAS library's work space: ~80 MB for the 100M model here, ~15 MB for its later passes), and its
# first meta-device operation imports ~36 MB of modules: the peer pays them too, so "over the peer" is what init_model
# itself holds.
PEERS = {"analytic": "reset", "calibrated": "forward", "meta-analytic": "meta-reset", "meta-calibrated": "meta-forward"}

# --- measuring inside one process ---------------------------------------------------------------------------------


def _status_bytes(field: str) -> int | None:
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), flags=re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) * 1024 if found else None


def peak_rss() -> int:
    """The process's peak resident memory in bytes (VmHWM; ru_maxrss, kB on Linux, bytes on macOS, without /proc)."""
    value = _status_bytes("VmHWM")
    if value is not None:
        return value
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss) if sys.platform == "darwin" else int(maxrss) * 1024


def current_rss() -> int | None:
    return _status_bytes("VmRSS")


def clear_peak() -> bool:
    """Reset the kernel's high-water mark to the current RSS (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class Sampler:
    """A thread that records (time, RSS, CUDA allocated) every ``interval`` seconds until stopped."""

    def __init__(self, cuda: bool, interval: float = 0.002) -> None:
        self.samples: list[tuple[float, int, int]] = []
        self._cuda = cuda
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            allocated = torch.cuda.memory_allocated() if self._cuda else 0
            self.samples.append((time.perf_counter(), current_rss() or 0, allocated))
            self._stop.wait(self._interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def phase_peaks(self, start: float, timings: dict[str, float]) -> dict[str, tuple[int, int]]:
        """Highest (RSS, CUDA allocated) sampled in each phase of ``init_model``, from its report's timings."""
        bounds: list[tuple[str, float, float]] = []
        offset = start
        for phase in ("trace", "propagate", "calibrate", "write"):
            seconds = timings.get(f"{phase}_s", 0.0)
            bounds.append((phase, offset, offset + seconds))
            offset += seconds
        peaks = {}
        for phase, low, high in bounds:
            inside = [(rss, cuda) for moment, rss, cuda in self.samples if low <= moment <= high]
            if inside:
                peaks[phase] = (max(r for r, _ in inside), max(c for _, c in inside))
        return peaks


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = Path("/proc/self/statm")


class CallTrace:
    """A ``sys.setprofile`` hook: the RSS at every call and return of a varprop function (and of each C function one
    calls: ``clone``, ``mul``, ``empty``...), to say which calls hold memory and what was running at the peak.

    Per function (``module:qualname``; C functions as ``<C> name`` under their caller): ``held`` = the RSS growth from
    call to return summed over calls (what it leaves allocated), ``above`` = the largest rise within one call over
    the RSS at its start (its own transient peak, callees included). Costs ~10 us per event (a /proc read)."""

    def __init__(self) -> None:
        self.stack: list[list[Any]] = []  # [name, rss at call, highest rss inside]
        self.held: dict[str, int] = {}
        self.above: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.peak = 0
        self.peak_stack: list[str] = []
        self._file = _STATM.open("rb", buffering=0)

    def rss(self) -> int:
        self._file.seek(0)
        return int(self._file.read().split()[1]) * _PAGE

    def _ours(self, frame: Any) -> bool:
        return f"{os.sep}varprop{os.sep}" in frame.f_code.co_filename

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            if not self._ours(frame):
                return
            if event == "call":
                name = f"{frame.f_globals.get('__name__', '?')}:{frame.f_code.co_qualname}"
            else:
                name = f"<C> {getattr(arg, '__qualname__', getattr(arg, '__name__', repr(arg)))}"
            now = self.rss()
            self.stack.append([name, now, now])
        elif event in ("return", "c_return", "c_exception"):
            if not self.stack or not self._ours(frame):
                return
            if event == "return" and not self.stack[-1][0].endswith(frame.f_code.co_qualname):
                return
            name, start, high = self.stack.pop()
            now = self.rss()
            high = max(high, now)
            if high > self.peak:
                self.peak = high
                self.peak_stack = [entry[0] for entry in self.stack] + [name]
            if self.stack:
                self.stack[-1][2] = max(self.stack[-1][2], high)
            self.held[name] = self.held.get(name, 0) + now - start
            self.above[name] = max(self.above.get(name, 0), high - start)
            self.calls[name] = self.calls.get(name, 0) + 1

    def summary(self, start: int, params: int, top: int = 25) -> list[str]:
        rise = self.peak - start
        lines = [
            f"peak {rise / MB:.0f} MB above the RSS at the call ({100 * rise / params:.0f}% of the {params / MB:.0f} "
            "MB of parameters), first reached in:",
            *(f"    {name}" for name in self.peak_stack),
            "",
            f"{'held (MB)':>10} {'above (MB)':>11} {'calls':>7}  function",
        ]
        names = sorted(self.calls, key=lambda n: -max(self.held[n], self.above[n]))[:top]
        lines += [f"{self.held[n] / MB:10.1f} {self.above[n] / MB:11.1f} {self.calls[n]:7d}  {n}" for n in names]
        return lines


def trace(route: str, model_name: str, device: str) -> None:
    """Run one route in this process under ``CallTrace`` and print where its memory goes."""
    config = MODELS[model_name]
    torch.manual_seed(0)
    model = config.build("meta" if ROUTES[route][1] else device)
    if ROUTES[route][1] and route != "plan":
        model.to_empty(device=device)
    params = _parameter_bytes(model)
    tracer = CallTrace()
    start = tracer.rss()
    step = _step(route, model, config.shape())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sys.setprofile(tracer)
        try:
            step()
        finally:
            sys.setprofile(None)
    print(f"{route} on {config.title()}, {device}:")
    print("\n".join(tracer.summary(start, params)))


def _parameter_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _reset_and_forward(model: nn.Module, shape: tuple[int, ...]) -> None:
    """``reset_parameters``, then one forward pass as calibration makes it (no gradients, dropout off) on a batch of
    ``shape`` made as ``calibrate='gaussian'`` makes it."""
    reset(model)
    example = torch.randn(shape, device=next(model.parameters()).device)
    batch = calibration_batch(model, "gaussian", (example,), None, None)  # (calibration's: at least 64 rows)
    with torch.no_grad(), NoDropout():
        model(*batch)


def _step(route: str, model: nn.Module, shape: tuple[int, ...]) -> Callable[[], Any]:
    if route.endswith("reset"):
        return functools.partial(reset, model)
    if route.endswith("forward"):
        return functools.partial(_reset_and_forward, model, shape)
    if route.endswith("calibrated"):
        return functools.partial(vt.init_model, model, shape, calibrate="gaussian")
    return functools.partial(vt.init_model, model, shape)


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one route in this (fresh) process and return its measurements."""
    route, device = spec["route"], spec["device"]
    cuda = device == "cuda"
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    if cuda:
        torch.zeros(1, device="cuda")  # the context, in the baseline too
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    out: dict[str, Any] = {"route": route, "model": spec["model"], "imports_rss": current_rss()}
    if route == "baseline":
        out["peak_rss"] = peak_rss()
        out["cuda_peak"] = torch.cuda.max_memory_allocated() if cuda else None
        return out
    config = MODELS[spec["model"]]
    on_meta = ROUTES[route][1]
    start = time.perf_counter()
    model = config.build("meta" if on_meta else device)
    out["parameter_bytes"] = _parameter_bytes(model)
    if on_meta and route != "plan":
        model.to_empty(device=device)
    out["build_s"] = time.perf_counter() - start
    if cuda:
        torch.cuda.synchronize()
        out["cuda_build_peak"] = torch.cuda.max_memory_allocated()
    out["build_peak_rss"] = peak_rss()
    out["cleared"] = clear_peak()
    out["rss_before_step"] = current_rss()
    step = _step(route, model, config.shape())
    outcome, report = "ok", None
    with Sampler(cuda) as sampler, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        begin = time.perf_counter()
        try:
            report = step()
        except Exception as error:  # recorded, not raised: today's meta plan raises with a hint
            outcome = f"{type(error).__name__}: {error}"
        if cuda:
            torch.cuda.synchronize()
        out["step_s"] = time.perf_counter() - begin
    out["outcome"] = outcome
    out["step_peak_rss"] = peak_rss()
    out["peak_rss"] = max(out["build_peak_rss"], out["step_peak_rss"])
    out["cuda_peak"] = torch.cuda.max_memory_allocated() if cuda else None
    if isinstance(report, vt.InitReport):
        out["phases"] = sampler.phase_peaks(begin, report.timings)
        out["timings"] = report.timings
        out["untouched"] = report.settings.get("untouched_parameters", [])
    return out


# --- the parent: one process per route and repeat ------------------------------------------------------------------


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**spec, "outcome": f"timed out after {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return result
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
    return {**spec, "outcome": f"process failed: {tail[0]}"}


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / MB:.0f}"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def section(
    device: str, results: dict[tuple[str, str], list[dict[str, Any]]], plan: list[tuple[str, str]], command: str
) -> list[str]:
    cuda = device == "cuda"
    key = "cuda_peak" if cuda else "peak_rss"
    baseline_runs = results["-", "baseline"]
    baseline = _median([r[key] for r in baseline_runs if r.get(key) is not None]) or 0.0
    rss_baseline = _median([r["peak_rss"] for r in baseline_runs if r.get("peak_rss") is not None]) or 0.0
    what = "peak allocated CUDA memory" if cuda else "peak RSS"
    models = dict.fromkeys(model for model, _ in plan if model != "-")
    lines = [
        "## Memory" + (" (CUDA)" if cuda else ""),
        "",
        f"Command: `{command}`. Machine:",
        "",
        *machine(),
        "",
        "Models (`nn.TransformerEncoder` of pre-norm `nn.TransformerEncoderLayer`, batch_first, example shape (8, 64, "
        "d_model); `tiny` measures the one-time costs of a first call: lazy imports, moment lattices):",
        "",
        *(
            f"- {name}: {MODELS[name].title()}, {MODELS[name].parameters() * 4 / MB:,.1f} MB in float32"
            for name in models
        ),
        "",
        f"Each route in its own fresh process, {len(baseline_runs)} processes each (the median, and the range). "
        f"{what[0].upper() + what[1:]} of the whole process; baseline: a process that only "
        + ("imports torch and varprop and creates the CUDA context" if cuda else "imports torch and varprop")
        + f" ({_mb(baseline)} MB{'' if not cuda else f'; its host RSS {_mb(rss_baseline)} MB'}). "
        "Extra peak = peak - (baseline + parameter bytes): what the route holds beyond the model itself (for the "
        "plan on meta parameters, which holds none: peak - baseline). Build: the build's own peak over the baseline "
        "(the process's peak is the larger of it and the step's). Step: its time, one call (a memory run, not a "
        "timing benchmark).",
        "",
        "Over the peer: peak - the peak of the route a user would run instead (`reset_parameters`; for calibration, "
        "plus one forward pass as calibration makes it, without gradients or dropout, on a batch of the same shape), "
        "in the same way (built on meta or not): what `init_model` holds beyond what initializing and running the "
        "model costs anyway (a process's first forward pass holds kernel code pages and the BLAS library's work "
        "space, and its first meta-device operation imports ~36 MB of modules: both are in the extra peak, and in "
        "the peer's).",
        "",
        f"| model | route | {what} (MB) | range (MB) | extra peak (MB) | extra / parameter bytes | over the peer (MB) "
        "| over the peer / parameter bytes | build (MB) | step (s) | outcome |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    medians = {where: _median([r[key] for r in runs if r.get(key) is not None]) for where, runs in results.items()}
    for model, route in plan:
        if route == "baseline":
            continue
        runs = results[model, route]
        peaks = [r[key] for r in runs if r.get(key) is not None]
        peak = _median(peaks)
        params = runs[0].get("parameter_bytes", MODELS[model].parameters() * 4)
        build_key = "cuda_build_peak" if cuda else "build_peak_rss"
        build = _median([r[build_key] - (0 if cuda else baseline) for r in runs if r.get(build_key) is not None])
        steps = _median([r["step_s"] for r in runs if "step_s" in r])
        outcome = runs[0].get("outcome", "-")
        if outcome.startswith("ok") and runs[0].get("untouched"):
            outcome += f" ({len(runs[0]['untouched'])} parameters untouched)"
        # the plan holds no parameters: its extra is all it allocates
        extra = None if peak is None else peak - baseline - (0 if route == "plan" else params)
        peer = medians.get((model, PEERS.get(route, "")))
        over = None if peak is None or peer is None else peak - peer
        cells = [
            model,
            ROUTES[route][0],
            _mb(peak),
            "-" if not peaks else f"{_mb(min(peaks))}-{_mb(max(peaks))}",
            _mb(extra),
            "-" if extra is None or params < MB else f"{100 * extra / params:.1f}%",
            _mb(over),
            "-" if over is None or params < MB else f"{100 * over / params:.1f}%",
            _mb(build),
            "-" if steps is None else f"{steps:.2f}",
            outcome.replace("|", "\\|").replace("\n", " "),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, "", *phases_table(results, plan, cuda, baseline)]


def phases_table(
    results: dict[tuple[str, str], list[dict[str, Any]]], plan: list[tuple[str, str]], cuda: bool, baseline: float
) -> list[str]:
    index = 1 if cuda else 0
    rows = []
    for model, route in plan:
        runs = [r for r in results.get((model, route), []) if r.get("phases")]
        if not runs or model == "tiny":
            continue
        params = runs[0]["parameter_bytes"]
        cells = []
        for phase in ("trace", "propagate", "calibrate", "write"):
            values = [r["phases"][phase][index] for r in runs if phase in r["phases"]]
            above = None if not values else max(values) - (0 if cuda else baseline)
            cells.append("-" if above is None else f"{100 * above / params:.0f}%")
        rows.append(f"| {model} | {ROUTES[route][0]} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "Where `init_model`'s peak is reached: the highest "
        + ("CUDA allocation" if cuda else "RSS")
        + " sampled every 2 ms in each of its phases (boundaries from `report.timings`; the highest over the "
        "repeats), above the baseline, over the parameter bytes: 100% is the model resident, 200% the model and "
        "one more copy of it (after `to_empty` the parameters' pages are resident only once written).",
        "",
        "| model | route | trace | propagate | calibrate | write |",
        "|---|---|---|---|---|---|",
        *rows,
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="processes per route (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--large", action="store_true", help="also materialize the 1B model on the CPU (~9 GB)")
    parser.add_argument("--quick", action="store_true", help="the 100M model only, one process per route")
    parser.add_argument("--write", action="store_true", help="replace the section in docs/benchmarks.md")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per process (default 900)")
    parser.add_argument(
        "--trace",
        choices=[r for r in ROUTES if r != "baseline"],
        help="trace one route of the 100M model in this process (where its memory goes; slow) instead of measuring",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trace is not None:
        trace(args.trace, "100M", args.device)
        return
    if args.child is not None:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here (torch.cuda.is_available() is False); nothing measured")
        return
    repeats = 1 if args.quick else args.repeats
    every = [
        "reset",
        "forward",
        "analytic",
        "calibrated",
        "meta-reset",
        "meta-forward",
        "meta-analytic",
        "meta-calibrated",
        "plan",
    ]
    plan = [("-", "baseline"), ("tiny", "analytic"), ("tiny", "calibrated")] + [("100M", route) for route in every]
    if not args.quick:
        plan += [("1B", route) for route in (every if args.large or args.device == "cuda" else ["plan"])]
    started, load = time.perf_counter(), os.getloadavg()
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for repeat in range(repeats):  # repeats interleaved: a change of load hits every route alike
        for model, route in plan:
            spec = {"route": route, "model": model, "device": args.device, "threads": args.threads}
            result = run_child(spec, args.timeout)
            results.setdefault((model, route), []).append(result)
            print(
                f"# {repeat + 1}/{repeats} {model} {route}: {_mb(result.get('peak_rss'))} MB, "
                f"{result.get('outcome', 'ok')}",
                file=sys.stderr,
                flush=True,
            )
    command = "python benchmarks/memory.py" + "".join(
        f" {flag}"
        for flag, on in (
            (f"--device {args.device}", args.device != "cpu"),
            ("--large", args.large),
            ("--quick", args.quick),
            (f"--repeats {args.repeats}", args.repeats != 3 and not args.quick),
            ("--write", args.write),
        )
        if on
    )
    lines = section(args.device, results, plan, command)
    lines += [
        "",
        f"Load average {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; total run time "
        f"{time.perf_counter() - started:.0f} s.",
    ]
    print("\n".join(lines))
    if args.write:
        replace_section("memory" if args.device == "cpu" else "memory-cuda", "\n".join(lines))


if __name__ == "__main__":
    main()

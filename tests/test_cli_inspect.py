"""``varprop inspect`` end to end on ``examples/mlp_factory.py:make_model``: text, --json, --save, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import varprop.cli as cli  # noqa: E402
import varprop.torch as varprop_torch  # noqa: E402
from varprop.cli.inspect import parse_shape  # noqa: E402
from varprop.torch.report.signal import signal_stats  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples" / "mlp_factory.py"
TARGET = f"{MLP}:make_model"
SHAPE = "256,64"
MLP_ROWS = 1 + 2 * 8 + 1  # input, 8 x (Linear, ELU), head

needs_init_model = pytest.mark.skipif(
    not hasattr(varprop_torch, "init_model"),
    reason="varprop.torch.init_model (whole-model init, issue 4) is not in this build yet",
)


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., Any]]:
    """``main([...])`` with ``inspect`` registered; returns (exit code, stdout, stderr)."""
    optional = cli._optional_modules
    monkeypatch.setattr(cli, "_optional_modules", lambda: list(dict.fromkeys([*optional(), "inspect"])))

    def invoke(*argv: str) -> tuple[int, str, str]:
        code = cli.main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        return code, out, err

    yield invoke


def load_example() -> Any:
    sys.path.insert(0, str(MLP.parent))
    try:
        import mlp_factory  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(MLP.parent))
    return mlp_factory


def test_none_text_figure_and_help(run: Callable[..., Any], tmp_path: Path) -> None:
    code, out, err = run("inspect", TARGET, "--input-shape", SHAPE, "--init", "none", "--out", tmp_path)
    assert code == 0, err
    assert "Sequential, 33930 parameters; --init none" in out
    assert "(input)" in out and "grad variance" in out
    assert (tmp_path / "signal-mlp_factory-make_model.png").stat().st_size > 0
    assert (tmp_path / "signal-mlp_factory-make_model.svg").stat().st_size > 0
    code, out, _ = run("inspect", "--help")
    assert code == 0 and "executes FILE.py" in out.replace("\n", " ").replace("  ", " ")


def test_json_and_save_match_the_factory_and_signal_stats(run: Callable[..., Any], tmp_path: Path) -> None:
    saved = tmp_path / "nested" / "state.pt"
    code, out, err = run(
        "inspect", TARGET, "--input-shape", SHAPE, "--init", "none", "--save", saved, "--no-plot", "--json", "--seed", 3
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["report"] is None and data["files"] == [] and data["saved"] == str(saved)
    assert data["input_shape"] == [256, 64] and data["parameters"] == 33930
    layers = data["signal"]["layers"]
    assert len(layers) == MLP_ROWS and layers[0]["name"] == "(input)" and layers[-1]["shape"] == [256, 10]
    # --init none with --seed 3: the state dict is the factory's model under torch.manual_seed(3).
    torch.manual_seed(3)
    model = load_example().make_model()
    state = torch.load(saved)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[key], value) for key, value in model.state_dict().items())
    # The printed statistics are signal_stats on N(0, 1) drawn from a generator seeded with seed + 1.
    batch = torch.randn((256, 64), generator=torch.Generator().manual_seed(4))
    expected = signal_stats(model, batch, seed=3).to_dict()["layers"]
    for row, reference in zip(layers, expected, strict=True):
        for key in ("mean", "variance", "channel_mean_sq", "channel_variance", "grad_variance"):
            assert row[key] == pytest.approx(reference[key], rel=1e-12), (row["name"], key)


@needs_init_model
@pytest.mark.parametrize("init", ["analytic", "gaussian"])
def test_varprop_init_keeps_the_signal(run: Callable[..., Any], init: str) -> None:
    code, out, err = run("inspect", TARGET, "--input-shape", SHAPE, "--init", init, "--no-plot", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["report"] is not None
    linear = [row["variance"] for row in data["signal"]["layers"] if row["type"] == "Linear"][:-1]
    # Exact ELU gain: every hidden pre-activation variance near 1 (8 layers of width 64: within 2x);
    # torch's default init decays below 0.02 by the last hidden layer (test_none_decays).
    assert all(0.5 < value < 2.0 for value in linear), linear


def test_none_decays(run: Callable[..., Any]) -> None:
    code, out, _ = run("inspect", TARGET, "--input-shape", SHAPE, "--init", "none", "--no-plot", "--json")
    linear = [row["variance"] for row in json.loads(out)["signal"]["layers"] if row["type"] == "Linear"][:-1]
    assert code == 0 and linear[-1] < 0.02, linear


@needs_init_model
def test_compare_plots_every_init(run: Callable[..., Any], tmp_path: Path) -> None:
    code, out, err = run("inspect", TARGET, "--input-shape", SHAPE, "--compare", "--out", tmp_path, "--json")
    assert code == 0, err
    assert sorted(json.loads(out)["compare"]) == ["analytic", "gaussian", "none"]


class StubReport:
    """Stands in for ``InitReport``: printable, with ``to_dict()``."""

    def __str__(self) -> str:
        return "stub init report"

    def to_dict(self) -> dict[str, Any]:
        return {"stub": True}


@pytest.mark.parametrize(("init", "calibrate"), [("analytic", None), ("gaussian", "gaussian")])
def test_init_model_called_as_documented(
    run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, init: str, calibrate: str | None
) -> None:
    """The contract with issue 4's ``init_model(model, example_input, *, calibrate=..., generator=...)``."""
    calls: list[dict[str, Any]] = []

    def init_model(model: Any, example_input: Any, **kwargs: Any) -> StubReport:
        calls.append({"model": model, "example_input": example_input, **kwargs})
        return StubReport()

    monkeypatch.setattr(varprop_torch, "init_model", init_model, raising=False)
    code, out, err = run("inspect", TARGET, "--input-shape", SHAPE, "--init", init, "--no-plot", "--seed", 5)
    assert code == 0, err
    assert "stub init report" in out and "(input)" in out
    (call,) = calls
    assert isinstance(call["model"], torch.nn.Module) and call["example_input"] == (256, 64)
    assert call["calibrate"] == calibrate
    assert torch.equal(call["generator"].get_state(), torch.Generator().manual_seed(5).get_state())
    code, out, _ = run("inspect", TARGET, "--input-shape", SHAPE, "--init", init, "--no-plot", "--json")
    assert code == 0 and json.loads(out)["report"] == {"stub": True}


def write(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "user_model.py"
    path.write_text(source, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("target", "shape", "message"),
    [
        ("missing.py:make_model", SHAPE, "no such file: 'missing.py'"),
        (str(MLP), SHAPE, "expected FILE.py:FACTORY"),
        (f"{MLP}:", SHAPE, "expected FILE.py:FACTORY"),
        (f"{MLP}:make-model", SHAPE, "is not a Python identifier"),
        (f"{MLP}:build", SHAPE, "defines no 'build'; functions defined there: make_model"),
        (f"{MLP}:WIDTH", SHAPE, "'WIDTH' in .* is of type int, not a function"),
        (TARGET, "256,6x", "--input-shape must be positive integers"),
        (TARGET, "256,0", "--input-shape must be positive integers"),
        (TARGET, "", "--input-shape must be positive integers"),
        (TARGET, "256,65", r"the model failed on a batch of shape 256,65: mat1 and mat2 .*--input-shape right"),
    ],
)
def test_errors(run: Callable[..., Any], target: str, shape: str, message: str) -> None:
    code, out, err = run("inspect", target, "--input-shape", shape, "--init", "none", "--no-plot")
    assert code == 2 and out == "", err
    assert err.startswith("varprop inspect: error: ") and "Traceback" not in err
    assert re.search(message, err), err


def test_errors_in_user_code(run: Callable[..., Any], tmp_path: Path) -> None:
    broken = write(tmp_path, "import torch\n\nraise ValueError('bad config')\n")
    code, _, err = run("inspect", f"{broken}:make_model", "--input-shape", "2,2", "--init", "none")
    assert code == 2 and "executing" in err and "raised ValueError: bad config (line 3)" in err
    not_module = write(tmp_path, "def make_model():\n    return 42\n")
    code, _, err = run("inspect", f"{not_module}:make_model", "--input-shape", "2,2", "--init", "none")
    assert code == 2 and "returned an object of type int, not a torch.nn.Module" in err
    failing = write(tmp_path, "def make_model():\n    return 1 / 0\n")
    code, _, err = run("inspect", f"{failing}:make_model", "--input-shape", "2,2", "--init", "none")
    assert code == 2 and "calling make_model() from" in err and "ZeroDivisionError" in err and "(line 2)" in err


def test_user_file_imports_its_neighbours(
    run: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "inspect_blocks.py").write_text("WIDTH = 3\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "inspect_blocks", None)  # recorded as absent: removed after the test
    monkeypatch.delitem(sys.modules, "inspect_blocks")
    source = "from torch import nn\nfrom inspect_blocks import WIDTH\n\ndef make():\n    return nn.Linear(WIDTH, 2)\n"
    path = write(tmp_path, source)
    code, out, err = run("inspect", f"{path}:make", "--input-shape", "4,3", "--init", "none", "--no-plot", "--json")
    assert code == 0, err
    assert [row["name"] for row in json.loads(out)["signal"]["layers"]] == ["(input)", ""]  # "" is the model
    assert str(tmp_path) not in sys.path


def test_parse_shape() -> None:
    assert parse_shape("32,3,32,32") == (32, 3, 32, 32)
    assert parse_shape(" 8x3 ") == (8, 3)


def test_examples_are_runnable() -> None:
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'examples')!r}); import cnn_factory, torch; "
    code += "print(tuple(cnn_factory.make_model()(torch.randn(2, 3, 32, 32)).shape))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "(2, 10)"

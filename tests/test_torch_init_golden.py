"""``init_model`` writes the same bits as the recorded version for the same seed (issue 13's "weights bit-identical to
today's" criterion: the memory rewrite changes when and where weights are drawn, not their values).

The reference, ``tests/reference/init_model_golden.json``, holds a SHA-256 digest of every parameter after
``init_model`` on small models covering each way a weight is written today: realized and mean-field scales,
calibration, the three distributions, float64 / float16 / bfloat16, MultiheadAttention's q/k/v row blocks and the
attention tilt, convolutions (also channels_last), BatchNorm, an embedding, a module called twice, residual adds.
It was recorded by ``python tests/test_torch_init_golden.py --write`` on main's code before the rewrite (the file
names the last commit that changed ``src/``). Digests depend on PyTorch's CPU samplers, whose vectorized kernels
differ between CPU capabilities and releases, so the test runs where the recorded torch version and CPU capability
match and is skipped elsewhere (the skip message says what differs). They do not depend on the number of torch
threads (recorded at 1 and 2: the same).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import varprop.torch as vt  # noqa: E402

REFERENCE = Path(__file__).resolve().parent / "reference" / "init_model_golden.json"


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 16)) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return x


class _Twice(nn.Module):
    """One Linear called twice (shared weights: the second call reuses the first call's plan)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(16, 16)
        self.act = nn.Tanh()
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.inner(self.act(self.inner(x)))))


def _mlp(dtype: torch.dtype = torch.float32) -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.ELU(), nn.Linear(32, 32), nn.SiLU(), nn.Linear(32, 8)).to(dtype)


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def _transformer() -> nn.Module:
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


# name -> (model builder, example shape, init_model keyword arguments)
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], dict[str, Any]]] = {
    "mlp-realized": (_mlp, (64, 16), {}),
    "mlp-mean-field": (_mlp, (64, 16), {"realized": False}),
    "mlp-calibrated": (_mlp, (64, 16), {"calibrate": "gaussian"}),
    "mlp-calibrated-realized": (_mlp, (64, 16), {"calibrate": "gaussian", "realized": True}),
    "mlp-uniform": (_mlp, (64, 16), {"distribution": "uniform"}),
    "mlp-truncated-normal": (_mlp, (64, 16), {"distribution": "truncated_normal"}),
    "mlp-float64": (lambda: _mlp(torch.float64), (64, 16), {}),
    "mlp-float16": (lambda: _mlp(torch.float16), (64, 16), {}),
    "mlp-bfloat16": (lambda: _mlp(torch.bfloat16), (64, 16), {}),
    "cnn": (_cnn, (4, 3, 8, 8), {}),
    "cnn-calibrated": (_cnn, (4, 3, 8, 8), {"calibrate": "gaussian"}),
    "cnn-channels-last": (lambda: _cnn().to(memory_format=torch.channels_last), (4, 3, 8, 8), {}),
    "transformer": (_transformer, (2, 8, 32), {}),
    "transformer-calibrated": (_transformer, (2, 8, 32), {"calibrate": "gaussian"}),
    "embedding": (lambda: nn.Sequential(nn.Embedding(50, 16), nn.Linear(16, 8)), (4, 10), {}),
    "residual": (_Residual, (32, 16), {}),
    "residual-none": (_Residual, (32, 16), {"residual": "none"}),
    "shared-module": (_Twice, (32, 16), {}),
}


def _digests(name: str) -> dict[str, str]:
    """SHA-256 (first 16 hex digits) of each parameter's bytes after ``init_model`` on case ``name``."""
    build, shape, options = CASES[name]
    torch.manual_seed(0)  # the model's own initial values (parameters init_model leaves alone keep them)
    model = build()
    vt.init_model(model, shape, generator=torch.Generator().manual_seed(1234), **options)
    found = {}
    for key, param in model.named_parameters():
        data = param.detach().contiguous().reshape(-1).view(torch.uint8)  # logical order (channels_last too)
        found[key] = hashlib.sha256(data.numpy().tobytes()).hexdigest()[:16]
    return found


def _platform() -> dict[str, str]:
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def _recorded() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE.read_text())
    return data


@pytest.mark.parametrize("name", sorted(CASES))
def test_weights_match_the_recorded_bits(name: str) -> None:
    recorded = _recorded()
    if recorded["platform"] != _platform():
        pytest.skip(f"digests recorded on {recorded['platform']}, this is {_platform()}: the samplers' bits differ")
    expected = recorded["cases"][name]
    found = _digests(name)
    changed = sorted(key for key in expected if found.get(key) != expected[key])
    assert not changed and found.keys() == expected.keys(), f"{name}: parameters whose bits changed: {changed}"


def test_every_case_is_recorded() -> None:
    assert sorted(_recorded()["cases"]) == sorted(CASES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="record the digests of init_model's weights")
    parser.add_argument("--write", action="store_true", help=f"write {REFERENCE.name}")
    args = parser.parse_args(argv)
    # the last commit that changed src/: the code whose weights these are
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%H", "--", "src"], capture_output=True, text=True, check=False
    ).stdout.strip()
    data = {
        "command": "python tests/test_torch_init_golden.py --write",
        "commit": commit,
        "platform": _platform(),
        "torch_threads": torch.get_num_threads(),
        "cases": {name: _digests(name) for name in sorted(CASES)},
    }
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    if args.write:
        REFERENCE.write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()

"""Import matplotlib on demand, with an error that says how to install it."""

from __future__ import annotations

from typing import Any

from .. import VarpropError

__all__ = ["require_pyplot"]


def require_pyplot() -> Any:
    """Return ``matplotlib.pyplot`` with the non-interactive Agg backend.

    Raises:
        VarpropError: matplotlib is not installed (install the ``plot`` extra).
    """
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise VarpropError(
            "plotting needs matplotlib, which is not installed; install it with: pip install 'varprop[plot]'"
        ) from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt

"""The literature, reproduced: published numbers beside the values varprop computes for them, live.

``reproduce_table()`` returns every row (He et al. 2015, the seed answer, Klambauer et al. 2017, the edge of
chaos, PyTorch's ``calculate_gain``) with its source, the published text, varprop's value and whether it agrees
within the rounding of the published figure; ``varprop reproduce`` prints it.
"""

from __future__ import annotations

from ._reproduce import GROUPS, NUMERICAL_RTOL, ReproRow, ReproTable, reproduce_table, rounding_tolerance

__all__ = ["GROUPS", "NUMERICAL_RTOL", "ReproRow", "ReproTable", "reproduce_table", "rounding_tolerance"]

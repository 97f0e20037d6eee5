"""Shared helpers of the secure-aggregation tests."""

from __future__ import annotations

import numpy as np
import pytest

from stamen.secure.boolean import run_locally
from stamen.secure.prg import expand, new_seed
from stamen.secure.range_check import deal_range_check
from stamen.secure.validity import SKETCH_ROWS, sketch_matrix, valid_rows

BITS = 19


@pytest.fixture
def sketch_check():
    """Shares each row of encoded updates, runs the sketch check on both parties, and
    returns which rows pass (the parties must agree)."""

    def checked(updates):
        x = np.stack(updates)
        x1 = expand(new_seed(), x.shape)
        sketch = sketch_matrix(new_seed(), SKETCH_ROWS, x.shape[1])
        r1, r2 = deal_range_check(x.shape[0] * SKETCH_ROWS)
        first, second = run_locally(
            valid_rows(x1, sketch, BITS, r1, first=True),
            valid_rows(x - x1, sketch, BITS, r2, first=False),
        )
        assert np.array_equal(first, second)
        return first.tolist()

    return checked

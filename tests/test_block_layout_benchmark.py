"""``benchmarks/compression/block_layout.py``: its blocks are contiguous in the order they
claim (row-major: within rows; column-major: down columns), and the script runs."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "compression" / "block_layout.py"


def load_script():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("block_layout", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def contiguous(kept: torch.Tensor) -> bool:
    """Whether the True entries of a flat mask are one run, wrapping at the end."""
    found, n = kept.nonzero().reshape(-1).tolist(), kept.numel()
    return any(sorted((i - s) % n for i in found) == list(range(len(found))) for s in found)


def test_a_row_major_block_covers_rows_and_a_column_major_one_columns():
    script = load_script()
    weight = torch.arange(1.0, 13.0).reshape(3, 4)  # 3 output units, 4 inputs; no zeros
    for seed in range(5):
        rows = script.sparsified("block-rowmajor", weight, ratio=4 / 12, seed=seed) != 0
        columns = script.sparsified("block-colmajor", weight, ratio=3 / 12, seed=seed) != 0
        assert int(rows.sum()) == 4 and contiguous(rows.reshape(-1))
        assert int(columns.sum()) == 3 and contiguous(columns.T.reshape(-1))
    assert int((script.sparsified("rand-k", weight, ratio=0.25, seed=0) != 0).sum()) == 3


def test_the_diagnostic_runs():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "2", "--eval-every", "1", "--workers", "2"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = done.stdout.splitlines()[1:]
    assert [row.split()[2] for row in rows] == ["rand-k", "block-rowmajor", "block-colmajor"]
    assert all(len(row.split()) == 5 for row in rows)  # "ef | name 1:.. 2:.."

"""Importing Stamen flushes denormal floats to zero (CPU backward passes through saturated
LSTM gates otherwise slow down ~10x)."""

from __future__ import annotations

import subprocess
import sys


def test_a_process_that_imports_stamen_flushes_denormals():
    code = "import torch, stamen; print((torch.tensor([1e-39]) * 1).item())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == 0.0

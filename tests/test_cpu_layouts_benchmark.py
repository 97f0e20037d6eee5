"""``benchmarks/cpu_layouts.py`` times layouts that compute the same per-client gradients as
the loop: each exact row's largest difference from the loop is float rounding."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_exact_layout_matches_the_loop():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cpu_layouts.py"), "--clients", "3",
         "--rounds", "1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line[:22].strip(): line[22:].split() for line in done.stdout.splitlines()[2:7]}
    assert list(rows) == ["loop", "loop, NHWC images", "vmap", "grouped", "concatenated"]
    for name in ("loop, NHWC images", "vmap", "grouped"):
        assert float(rows[name][2]) < 1e-4, (name, rows[name])
    assert rows["concatenated"][2] == "summed"

"""``keep_freed_memory``: a buffer freed in one round is reused by the next, not faulted in
again page by page (counted as the process's minor page faults)."""

import subprocess
import sys
from pathlib import Path

CHECK = """
import resource
import numpy as np
from stamen.simulations.allocator import keep_freed_memory

def faults_of_rounds(rounds=3, size=4 * 2**20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        # 25 replies of a round: written, so their pages are faulted in unless reused
        buffers = [np.ones(size // 4, dtype=np.float32) for _ in range(25)]
        del buffers
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

default = faults_of_rounds()
assert keep_freed_memory()
faults_of_rounds(rounds=1)  # the first round faults its pages in once
print(default, faults_of_rounds())
"""


def test_freed_buffers_are_reused_across_rounds():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    default, kept = map(int, done.stdout.split())
    pages = 3 * 25 * 4 * 2**20 // 4096
    assert default > pages / 4, default  # glibc's defaults fault many of them in every round
    assert kept < pages / 20, kept


def test_benchmark_compares_the_settings_in_separate_processes():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "allocator.py"
    done = subprocess.run(
        [sys.executable, str(script), "--clients", "5", "--rounds", "2"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[2:]}
    assert list(rows) == ["loop", "vmap", "pack", "stack"], done.stdout
    for step in ("loop", "stack"):  # the kept process faults far fewer pages in
        faults_default, faults_kept = float(rows[step][3]), float(rows[step][4])
        assert faults_kept < faults_default / 10, done.stdout

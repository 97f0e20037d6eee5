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
        [sys.executable, str(script), "--rounds", "1"],  # 25 clients: a 120 MB matrix
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[2:]}
    assert list(rows) == ["loop", "vmap", "pack", "stack"], done.stdout
    faults = {step: (float(row[3]), float(row[4])) for step, row in rows.items()}
    default, kept = faults["stack"]  # over glibc's 32 MB cap: mmapped afresh by default
    # (once in a while the default run finds the pages already there, e.g. when the kernel
    # backs them with huge pages: then there is nothing to save, and kept must stay as low)
    assert kept < max(default / 10, 100), done.stdout
    total_default, total_kept = (sum(f[i] for f in faults.values()) for i in (0, 1))
    assert total_kept < total_default / 2, done.stdout

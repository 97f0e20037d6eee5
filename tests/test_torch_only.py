"""The batched clients and the aggregation rules run with torch and numpy alone: a bare GPU
machine has no flwr and no Ray, and ``benchmarks/gpu.py`` must run there."""

import subprocess
import sys
from pathlib import Path

from stamen.algorithms.aggregation import AGGREGATORS

ROOT = Path(__file__).resolve().parents[1]

BLOCKED = """
import importlib.abc, runpy, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("flwr", "ray", "flwr_datasets", "datasets"):
            raise ImportError(f"{name} is not on a bare GPU machine")

sys.meta_path.insert(0, Blocked())
sys.argv = ["gpu.py", "--clients", "5", "--rounds", "1", "--cpu-rounds", "1"]
runpy.run_path(sys.argv_path, run_name="__main__")
"""


def test_gpu_benchmark_runs_without_flwr_or_ray():
    script = BLOCKED.replace("sys.argv_path", repr(str(ROOT / "benchmarks" / "gpu.py")))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for row in ("loop", "batched", "bucketing(s=2) | cclip(tau=10, iters=3)", "krum", "median"):
        assert row in done.stdout


def test_every_rule_imports_without_flwr():
    code = (
        "import importlib.abc, sys\n"
        "class B(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('flwr', 'ray'): raise ImportError(name)\n"
        "sys.meta_path.insert(0, B())\n"
        "from stamen.algorithms.aggregation import AGGREGATORS, parse_pipeline\n"
        "from stamen.attacks import create_attack\n"
        "from stamen.clients.batched_training import BatchedSGD\n"
        "print(sorted(AGGREGATORS.names()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(sorted(AGGREGATORS.names()))

"""``benchmarks/throughput.py`` runs exp2's cell the same way on every engine: the bare loop,
Flower inline one by one, and batched end with the same model (so the same accuracy), and the
CSV it writes carries each run's ratio to the bare loop of its repeat."""

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engines_agree_and_ratios_are_written(tmp_path):
    out = tmp_path / "throughput.csv"
    args = ["--rounds", "2", "--engines", "bare,inline,batched", "--repeats", "2", "--csv"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), *args, str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert [(r["engine"], r["repeat"]) for r in rows] == [
        (engine, repeat) for repeat in "01" for engine in ("bare", "inline", "batched")
    ]
    assert len({r["accuracy"] for r in rows}) == 1, rows
    for r in rows:
        assert float(r["wall_ratio"]) > 0
        if r["engine"] == "bare":
            assert float(r["wall_ratio"]) == 1.0
    assert "median over 2 repeats" in done.stdout

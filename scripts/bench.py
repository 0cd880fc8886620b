"""Run the benchmarks (``make bench``), or some of them: ``scripts/bench.py api thumb``.

Each ``scripts/bench_<name>.py`` runs its baseline and dragon side by side on this machine
and prints the figures and ratios; none of them asserts a time. They are slow (minutes) and
need the bench extras (``pip install -e '.[bench]'``, which ``make bench`` does).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    failed = 0
    for script in scripts:
        print(f"\n== {script.stem.removeprefix('bench_')} ({script.name})", flush=True)
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"-- {script.name}: exit {code}, {time.monotonic() - t0:.0f} s", flush=True)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run the benchmarks (``make bench``), or some of them: ``scripts/bench.py api thumb``.

Each ``scripts/bench_<name>.py`` runs its baseline and dragon side by side on this machine
and prints the figures and ratios; none of them asserts a time. A line starting ``MET`` or
``MISSED`` is a figure against its target; they are gathered in a table at the end. The
benchmarks are slow (minutes) and need the bench extras (``make bench`` installs them).
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
    verdicts: dict[str, list[str]] = {}
    for script in scripts:
        print(f"\n== {script.stem.removeprefix('bench_')} ({script.name})", flush=True)
        t0 = time.monotonic()
        code, verdicts[script.name] = run(script)
        print(f"-- {script.name}: exit {code}, {time.monotonic() - t0:.0f} s", flush=True)
        failed += code != 0
    print("\n== targets")
    for name, lines in verdicts.items():
        for line in lines or ["(no target checked)"]:
            print(f"{name:24} {line}")
    return 1 if failed else 0


def run(script: Path) -> tuple[int, list[str]]:
    """Run one benchmark, echoing its output; (exit code, its MET/MISSED lines)."""
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=HERE.parent, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert proc.stdout
    verdicts = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.startswith(("MET ", "MISSED ")):
            verdicts.append(line.strip())
    return proc.wait(), verdicts


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

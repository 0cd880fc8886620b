"""Fail when a function is more complex than ``LIMIT``, as radon counts cyclomatic complexity.

``make lint`` runs it over ``dragon/``. ruff's mccabe check counts differently (lower for
boolean operators and comprehensions), so a function can pass ruff and still be too hard
to follow; radon's count is the one we hold. No per-function exemptions: split the
function along what it does instead.

    python scripts/check_complexity.py [--limit N] [PATH ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radon.complexity import cc_visit
from radon.visitors import Function

LIMIT = 15


def too_complex(path: Path, limit: int) -> list[str]:
    """``file:line name (complexity)`` for each function, method or closure of ``path`` over
    ``limit`` (radon lists methods both inside their class and on their own: these are
    the ones on their own)."""
    found = []
    pending = [b for b in cc_visit(path.read_text(encoding="utf-8")) if isinstance(b, Function)]
    while pending:
        item = pending.pop()
        pending.extend(item.closures)
        if item.complexity > limit:
            found.append(f"{path}:{item.lineno} {item.fullname} ({item.complexity})")
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=LIMIT)
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("dragon")])
    args = parser.parse_args(argv)
    files = sorted(f for p in args.paths for f in ([p] if p.is_file() else p.rglob("*.py")))
    found = [line for f in files for line in too_complex(f, args.limit)]
    for line in found:
        print(line)
    print(f"{len(found)} function(s) over cyclomatic complexity {args.limit} in {len(files)} files")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

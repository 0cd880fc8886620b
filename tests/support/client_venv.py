"""A fresh venv holding the client distribution alone (``clients/python``, ``dragon-client``),
as a newcomer installs it: ``python -m venv``, then ``pip install`` of the distribution,
which brings httpx and what httpx needs, and nothing of the server.

The distribution is copied first (its ``dragon/client`` link followed), so the build does
not write into the checkout and two test processes building at once do not meet. pip finds
httpx where this machine's pip configuration says (its indexes, and their local mirrors
when it names some).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "python"


def make_client_venv(root: Path) -> Path:
    """The venv's folder, under ``root``."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    source = root / "dragon-client"
    shutil.copytree(
        CLIENT_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        cwd=root,
        env=clean_env(),
    )
    assert installed.returncode == 0, installed.stderr
    return venv


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without what would reach this checkout or its venv:
    ``PYTHONPATH``, ``VIRTUAL_ENV`` and the venv's ``bin`` on ``PATH``."""
    ours = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != ours)
    env.update(extra or {})
    return env

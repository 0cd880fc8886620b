"""Every look filter (dragon.sxml.looks) is a filter chain ffmpeg runs, with its window."""

from __future__ import annotations

import subprocess

import pytest

from dragon.sxml import looks
from dragon.sxml.model import Node


@pytest.mark.parametrize("kind", sorted(looks.LOOKS))
def test_each_look_runs_in_ffmpeg_with_its_window(kind):
    node = Node(tag="filter", line=1, column=1, attrs={"type": kind})
    steps = looks.steps(node, 240)
    assert steps
    # As picture.py writes them: each step timed by the filter's window, on a layer that
    # may have transparency. (A step without parameters took ":enable" into its name.)
    chain = ",".join(f"{step}:enable='between(t,0,0.1)'" for step in steps)
    run = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
        + ["-i", "testsrc2=s=64x48:d=0.2", "-vf", f"format=yuva420p,{chain}", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr

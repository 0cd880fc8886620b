"""Tools and pool workers run below the API's CPU priority (DRAGON_TOOL_NICE).

coreutils ``nice`` with no command prints the niceness it runs at, so spawning it as the
"tool" reports what a real ffmpeg would get.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from dragon.runtime import processes
from dragon.runtime.pool import WorkerPool


@pytest.fixture
def tool_nice():
    """Restore the module's level after a test changes it."""
    yield processes.set_tool_nice
    processes.set_tool_nice(10)


async def test_a_spawned_tool_runs_at_the_tool_niceness(tool_nice):
    base = os.nice(0)
    tool_nice(base + 7)
    result = await processes.run_process(["nice"], timeout=10)
    assert int(result.stdout) == base + 7


async def test_no_lowering_when_the_level_is_the_servers_own(tool_nice):
    tool_nice(os.nice(0))
    assert processes.guarded(["ffmpeg"])[-1:] == ["ffmpeg"]
    result = await processes.run_process(["nice"], timeout=10)
    assert int(result.stdout) == os.nice(0)


def _worker_levels() -> tuple[int, int]:
    """In a pool worker: its own niceness, and that of a tool it spawns."""
    tool = subprocess.run(processes.guarded(["nice"]), capture_output=True, check=True)
    return os.nice(0), int(tool.stdout)


async def test_pool_workers_and_their_tools_run_at_the_pool_niceness():
    level = os.nice(0) + 5
    pool = WorkerPool(1, nice=level)
    try:
        worker, tool = await pool.run(_worker_levels)
    finally:
        pool.shutdown()
    assert (worker, tool) == (level, level)  # lowered once, not twice


async def test_a_tool_has_its_own_process_group_in_the_servers_session():
    # A session of its own would put the tool in a scheduling group of its own where the
    # kernel groups sessions (autogroup), and its niceness would then not lower it at all.
    result = await processes.run_process(["cat", "/proc/self/stat"], timeout=10)
    pid, rest = result.stdout.decode().split(" ", 1)
    group, session = (int(f) for f in rest.rsplit(")", 1)[1].split()[2:4])
    assert group == int(pid)  # killed as a group, apart from the server
    assert session == os.getsid(0)

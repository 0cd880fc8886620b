"""Why a task failed, for ``details=true``: the stage, the tool run, the tool versions.

Built when the task ends in error and stored with its end. A tool's argv and stderr name
files in the task's private folder; they are shown relative to it (``src0/source.mp4``),
so no server path leaks, and URLs lose their query strings (signed URLs carry
credentials there).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from dragon import errors
from dragon.database.interface import Row
from dragon.runtime.tool_versions import tool_versions
from dragon.tasks.context import TaskContext

QUERY = re.compile(r"(\w+://[^\s?\"']+)\?[^\s\"']*")


def relative(text: str, tmpdir: Path, tmp_root: Path) -> str:
    """``text`` with the task folder shown as ``.`` and other temp folders as ``..``."""
    text = text.replace(f"{tmpdir}/", "").replace(str(tmpdir), ".")
    text = text.replace(f"{tmp_root}/", "../").replace(str(tmp_root), "..")
    return QUERY.sub(r"\1?********", text)


def tool_section(tool: dict[str, Any], tmpdir: Path, tmp_root: Path) -> dict[str, Any]:
    argv = [relative(str(arg), tmpdir, tmp_root) for arg in tool["argv"]]
    if argv:
        argv[0] = Path(argv[0]).name
    return {
        "argv": argv,
        "exit_code": tool["exit_code"],
        "stderr": relative(tool["stderr"], tmpdir, tmp_root),
    }


async def diagnose(
    exc: BaseException,
    ctx: TaskContext | None,
    tmpdir: Path,
    tmp_root: Path,
    stage: str | None = None,
) -> dict[str, Any]:
    """The diagnostics of a failure: ``stage``, ``tool`` (or None) and ``versions``.

    The stage comes from where the error surfaced (``TaskError.stage``); without one, a
    tool that failed earlier in the task (run with ``check=False``, then judged by the
    task) is taken as the cause; else the task's own code failed: ``process``.
    """
    tool = exc.tool if isinstance(exc, errors.TaskError) else None
    found = exc.stage if isinstance(exc, errors.TaskError) else None
    failed_run = None if ctx is None else ctx.failed_run
    if stage is None and found is None and tool is None and failed_run is not None:
        found, tool = failed_run
    return {
        "stage": stage or found or "process",
        "tool": tool_section(tool, tmpdir, tmp_root) if tool else None,
        "versions": await asyncio.to_thread(tool_versions),
    }


async def diagnostics_of(row: Row, stored: dict[str, Any] | None) -> dict[str, Any]:
    """A failed task's diagnostics as ``details=true`` shows them, with its ``attempts``.

    A task refused at creation (its parameters) or given up after interruptions has none
    stored: it failed at ``validate``, or while processing, without a tool to show.
    """
    if stored is None:
        stage = "validate" if row["error_code"] == errors.PARAMETERS else "process"
        stored = {"stage": stage, "tool": None, "versions": await asyncio.to_thread(tool_versions)}
    return {**stored, "attempts": row["attempts"]}

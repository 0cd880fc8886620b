"""Failure diagnostics show tool runs relative to the task folder, without credentials."""

from __future__ import annotations

from pathlib import Path

from dragon.engine.diagnostics import relative, tool_section

TMP = Path("/srv/dragon/tmp")
TASK = TMP / "KEY123"


def test_paths_are_relative_to_the_task_folder():
    assert relative(f"{TASK}/src0/source.mp4", TASK, TMP) == "src0/source.mp4"
    assert relative(str(TASK), TASK, TMP) == "."
    assert relative(f"{TMP}/batches/B1/0/source", TASK, TMP) == "../batches/B1/0/source"
    assert relative(f"movie={TASK}/a.png[x]", TASK, TMP) == "movie=a.png[x]"


def test_url_queries_are_masked():
    text = "Error opening https://bucket.s3.test/o.mp4?X-Amz-Signature=abc&X-Amz-Credential=k"
    assert relative(text, TASK, TMP) == "Error opening https://bucket.s3.test/o.mp4?********"


def test_tool_section():
    tool = {
        "argv": ["/usr/bin/ffmpeg", "-i", f"{TASK}/src0/source.mp4", f"{TASK}/out.mp4"],
        "exit_code": 1,
        "stderr": f"{TASK}/src0/source.mp4: Invalid data\n",
    }
    assert tool_section(tool, TASK, TMP) == {
        "argv": ["ffmpeg", "-i", "src0/source.mp4", "out.mp4"],
        "exit_code": 1,
        "stderr": "src0/source.mp4: Invalid data\n",
    }

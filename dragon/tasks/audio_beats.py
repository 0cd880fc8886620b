"""audio.beats: beat and downbeat times of an audio file, by our own tracker.

``duration`` is the decoded duration in seconds, a float rounded to 0.01 (the original
API documented an integer; a float loses nothing for clients that round). ``beats`` and
``downbeats`` are seconds rounded to the millisecond.
"""

from __future__ import annotations

from typing import Any

from dragon.media import beats, probe
from dragon.media.pcm import pcm_argv, run_in_pool
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema, Url

TASK_NAME = "audio.beats"
HEAVY = True
INTERACTIVE = True


class Schema(TaskSchema):
    url = Url(required=True)


async def run(ctx: TaskContext) -> dict[str, Any]:
    """The file is decoded to 22050 Hz mono by an ffmpeg pipe and analysed as it streams
    (``dragon.media.beats``), all inside a process-pool worker, so neither the samples nor
    the numpy work touch the event loop, and memory does not grow with the audio's length.
    """
    info = await probe.fetch_source(ctx, ctx.params["url"], "audio")
    argv = pcm_argv(probe.input_args(info), beats.SR)
    result = await run_in_pool(ctx, beats.analyse, argv)
    return {
        "beats": result["beats"],
        "downbeats": result["downbeats"],
        "duration": result["duration"],
    }

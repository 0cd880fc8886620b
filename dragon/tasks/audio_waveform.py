"""audio.waveform: a waveform image (min/max per pixel column) of an audio file.

``duration`` is the duration of the audio file (as its container states it, or the decoded
length when it does not), not of the ``start``/``end`` range drawn.
"""

from __future__ import annotations

import functools
from typing import Any

from marshmallow import fields, validate

from dragon import errors
from dragon.media import probe, waveform
from dragon.media.pcm import pcm_argv, run_in_pool
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import Choice, Color, Size, TaskSchema, Url

TASK_NAME = "audio.waveform"
HEAVY = True
INTERACTIVE = True

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


class Schema(TaskSchema):
    url = Url(required=True)
    width = Size(load_default=1024)
    height = Size(load_default=60)
    vmargin = fields.Integer(load_default=0, validate=validate.Range(min=0))
    fill = Color(load_default=(0, 0, 0))  # defaults are not deserialised: #000000
    background = Color(load_default=(255, 255, 255))  # #FFFFFF
    start = fields.Float(load_default=0.0, validate=validate.Range(min=0))
    end = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0))
    format = Choice(list(CONTENT_TYPES), load_default="jpeg")


def check_params(p: dict[str, Any], max_pixels: int) -> None:
    if 2 * p["vmargin"] >= p["height"]:
        most = (p["height"] - 1) // 2
        raise errors.ParameterError.one(
            "vmargin", f"must leave rows to draw in a height of {p['height']} (at most {most})"
        )
    if p["width"] * p["height"] > max_pixels:
        raise errors.ParameterError.one(
            "width", f"{p['width']}x{p['height']} is over the limit of {max_pixels} pixels"
        )
    if p["end"] is not None and p["end"] <= p["start"]:
        raise errors.ParameterError.one("end", "must be after start")


async def run(ctx: TaskContext) -> dict[str, Any]:
    """One process-pool worker does everything.

    It runs ffmpeg (input seek to ``start``, ``-t`` for ``end``, mono 16-bit PCM at the
    source rate on a pipe), reduces the samples per column as they arrive, draws and saves
    the image (``dragon.media.waveform``). Chosen over reading the pipe on the event loop and
    reducing in a thread: both cost the same under scripts/bench_waveform.py (the decode
    dominates), and the worker keeps every sample off the event loop and the GIL of the
    server process. Memory is flat in the audio's length.
    """
    p = ctx.params
    check_params(p, ctx.settings.max_pixels)
    info = await probe.fetch_source(ctx, p["url"], "audio")
    if info.duration is not None and p["start"] >= info.duration:
        raise errors.ParameterError.one(
            "start", f"is past the end of the audio ({info.duration:.2f} s)"
        )

    span = None if p["end"] is None else p["end"] - p["start"]
    rate = waveform.decode_rate(info.sample_rate)
    argv = pcm_argv(
        probe.input_args(info, seek=p["start"]),
        rate,
        duration=span,
        sample_format=waveform.SAMPLE_FORMAT,
    )
    out = ctx.tmpdir / f"waveform.{'png' if p['format'] == 'png' else 'jpg'}"
    draw = functools.partial(
        waveform.render,
        out_path=str(out),
        width=p["width"],
        height=p["height"],
        vmargin=p["vmargin"],
        fill=p["fill"],
        background=p["background"],
        fmt=p["format"],
        rate=rate,
    )
    decoded = await run_in_pool(ctx, draw, argv)
    content_type = CONTENT_TYPES[p["format"]]
    await ctx.output("output", out, content_type)
    duration = info.duration if info.duration is not None else p["start"] + decoded
    return {
        "duration": round(duration, 2),
        "width": p["width"],
        "height": p["height"],
        "content_type": content_type,
    }

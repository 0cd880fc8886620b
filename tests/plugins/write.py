"""``test.write`` (tests only): waits ``seconds``, then writes ``size`` bytes to an output.

The wait lets a test change the disk under a task that has already started (a disk that
fills up while the task runs).
"""

import asyncio

from marshmallow import fields

from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema

TASK_NAME = "test.write"
HEAVY = False


class Schema(TaskSchema):
    seconds = fields.Float(load_default=0.0)
    size = fields.Integer(load_default=1024)


def write(path, size: int) -> None:
    with open(path, "wb") as f:
        for start in range(0, size, 1 << 20):
            f.write(b"\0" * min(1 << 20, size - start))


async def run(ctx: TaskContext) -> dict:
    await asyncio.sleep(ctx.params["seconds"])
    path = ctx.tmpdir / "out.bin"
    await ctx.in_thread(write, path, ctx.params["size"])
    await ctx.output("output", path, "application/octet-stream")
    return {"size": ctx.params["size"]}

"""``test.progress`` (tests only): reports progress and a partial result, then finishes."""

import asyncio

from marshmallow import fields

from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema

TASK_NAME = "test.progress"
HEAVY = False


class Schema(TaskSchema):
    seconds = fields.Float(load_default=1.5)


async def run(ctx: TaskContext) -> dict:
    ctx.progress(50)
    await ctx.partial({"half": True})
    await asyncio.sleep(ctx.params["seconds"])
    return {"half": True, "done": True}

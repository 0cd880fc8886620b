"""``test.spin`` (tests only): burns CPU in the process pool for ``seconds``."""

import time

from marshmallow import fields

from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema

TASK_NAME = "test.spin"
HEAVY = True


class Schema(TaskSchema):
    seconds = fields.Float(load_default=1.0)


def spin(seconds: float) -> int:
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


async def run(ctx: TaskContext) -> dict:
    return {"loops": await ctx.in_process(spin, ctx.params["seconds"])}

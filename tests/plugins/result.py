"""``test.result`` (tests only): ends at once with a result of ``size`` bytes of text.

Lets a test make many large status documents quickly (the cache of ended documents is
bounded in bytes) without a task that needs a large source.
"""

from marshmallow import fields, validate

from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema

TASK_NAME = "test.result"
HEAVY = False


class Schema(TaskSchema):
    size = fields.Integer(load_default=1024, validate=validate.Range(min=0, max=8_000_000))


async def run(ctx: TaskContext) -> dict:
    return {"text": "x" * ctx.params["size"]}

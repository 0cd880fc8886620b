"""``test.crash`` (tests only): a bug that puts its (signed) URL in an exception message."""

from marshmallow import fields

from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema

TASK_NAME = "test.crash"
HEAVY = False


class Schema(TaskSchema):
    url = fields.String(required=True)


async def run(ctx: TaskContext) -> dict:
    raise RuntimeError(f"unexpected answer from {ctx.params['url']}")

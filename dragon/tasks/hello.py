"""hello: answers ``"Hello <name>"``; the smallest task, to try the API and its streams with."""

from marshmallow import fields

from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema

TASK_NAME = "hello"
HEAVY = False


class Schema(TaskSchema):
    name = fields.String(required=True)


async def run(ctx: TaskContext) -> str:
    return f"Hello {ctx.params['name']}"

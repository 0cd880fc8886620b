"""hello: the smallest task, answering ``"Hello <name>"`` (the seed's create_stream example)."""

from marshmallow import fields

from dragon.tasks.schema import TaskSchema

TASK_NAME = "hello"
HEAVY = False


class Schema(TaskSchema):
    name = fields.String(required=True)


async def run(ctx) -> str:
    return f"Hello {ctx.params['name']}"

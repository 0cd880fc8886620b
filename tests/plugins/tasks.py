"""Tasks loaded only by tests (``DRAGON_TASK_MODULES=tests.plugins.tasks``).

``test.sleep`` runs a real ``sleep`` process, so crash, shutdown and timeout tests exercise
the same subprocess path as ffmpeg does. ``test.progress`` reports progress and a partial
result. They show the plugin mechanism too: a third-party task is a module like these.
"""

from marshmallow import fields

from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema

TASK_NAME = "test.sleep"
HEAVY = True


class Schema(TaskSchema):
    seconds = fields.Float(load_default=1.0)


async def run(ctx: TaskContext) -> dict:
    await ctx.run(["sleep", str(ctx.params["seconds"])])
    return {"slept": ctx.params["seconds"]}

"""``test.file`` (tests only): writes the given text to output files through the store.

``names`` lists the outputs to write (one, ``output``, by default), each with the same text.
"""

from marshmallow import fields

from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema

TASK_NAME = "test.file"
HEAVY = False


class Schema(TaskSchema):
    text = fields.String(load_default="hello file")
    fail = fields.Boolean(load_default=False)
    names = fields.List(fields.String(), load_default=["output"])


async def run(ctx: TaskContext) -> dict:
    if ctx.params["fail"]:
        from dragon.errors import TaskError

        raise TaskError("invalid_media", "asked to fail")
    for i, name in enumerate(ctx.params["names"]):
        path = ctx.tmpdir / f"out{i}.txt"
        path.write_text(ctx.params["text"])
        await ctx.output(name, path, "text/plain")
    return {"length": len(ctx.params["text"])}

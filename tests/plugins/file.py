"""``test.file`` (tests only): writes the given text to an output file through the store."""

from marshmallow import fields

from dragon.tasks.schema import TaskSchema

TASK_NAME = "test.file"
HEAVY = False


class Schema(TaskSchema):
    text = fields.String(load_default="hello file")
    fail = fields.Boolean(load_default=False)


async def run(ctx) -> dict:
    if ctx.params["fail"]:
        from dragon.errors import TaskError

        raise TaskError("invalid_media", "asked to fail")
    path = ctx.tmpdir / "out.txt"
    path.write_text(ctx.params["text"])
    await ctx.output("output", path, "text/plain")
    return {"length": len(ctx.params["text"])}

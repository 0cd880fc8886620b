"""``test.fetch`` (tests only): downloads ``url`` and reports its size and sniffed type."""

import hashlib

from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema, Url

TASK_NAME = "test.fetch"
HEAVY = False


class Schema(TaskSchema):
    url = Url(required=True)


async def run(ctx: TaskContext) -> dict:
    download = await ctx.fetch(ctx.params["url"])
    digest = hashlib.sha256(download.path.read_bytes()).hexdigest()
    return {"size": download.size, "mime": download.mime, "sha256": digest}

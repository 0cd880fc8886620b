"""youtube: uploads arrive with the video.upload tasks; until then, a clear refusal."""

from dragon.stores import BaseStore


class Store(BaseStore):
    type = "youtube"

    @classmethod
    def problems(cls, options: dict) -> list[str]:
        return ["the youtube storage system is not available on this server yet;"
                " use persistent, volatile or s3_signed"]

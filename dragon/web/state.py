"""Everything a request handler may reach, under one typed aiohttp AppKey."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web


@dataclasses.dataclass
class State:
    settings: Any
    db: Any = None
    fetcher: Any = None
    pool: Any = None
    bus: Any = None
    registry: Any = None
    stores: Any = None
    scheduler: Any = None
    service: Any = None
    auth: Any = None
    buckets: Any = None
    callbacks: Any = None
    sweeper: Any = None


STATE = web.AppKey("dragon_state", State)


def state(request: web.Request) -> State:
    return request.app[STATE]

"""Everything a request handler may reach, under one typed aiohttp AppKey.

The server's parts are built in ``dragon.web.app`` when the application starts, after
``State`` exists; until then only ``settings`` is set.
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from dragon.config import Settings
from dragon.database.interface import Database
from dragon.engine.auth import Authenticator
from dragon.engine.bus import Bus
from dragon.engine.callbacks import CallbackSender
from dragon.engine.rate_limits import TokenBuckets
from dragon.engine.resumable import Uploads
from dragon.engine.scheduler import Scheduler
from dragon.engine.service import Service
from dragon.engine.storage import Storage
from dragon.engine.sweeper import Sweeper
from dragon.net.fetcher import Fetcher
from dragon.runtime.pool import WorkerPool
from dragon.stores import Stores
from dragon.tasks import TaskSpec


@dataclasses.dataclass
class State:
    settings: Settings
    db: Database = dataclasses.field(init=False)
    fetcher: Fetcher = dataclasses.field(init=False)
    pool: WorkerPool = dataclasses.field(init=False)  # batch and light tasks' jobs
    interactive_pool: WorkerPool = dataclasses.field(init=False)
    bus: Bus = dataclasses.field(init=False)
    registry: dict[str, TaskSpec] = dataclasses.field(init=False)
    stores: Stores = dataclasses.field(init=False)
    scheduler: Scheduler = dataclasses.field(init=False)
    service: Service = dataclasses.field(init=False)
    storage: Storage = dataclasses.field(init=False)
    auth: Authenticator = dataclasses.field(init=False)
    buckets: TokenBuckets = dataclasses.field(init=False)
    callbacks: CallbackSender = dataclasses.field(init=False)
    sweeper: Sweeper = dataclasses.field(init=False)
    uploads: Uploads = dataclasses.field(init=False)


STATE = web.AppKey("dragon_state", State)


def state(request: web.Request) -> State:
    return request.app[STATE]

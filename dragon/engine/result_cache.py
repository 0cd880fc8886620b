"""Which task already answered a thumbnail URL: the result cache of ``/v1/create_file``.

An ``<img src=".../create_file/cat.jpg?task_name=image.thumb&url=...">`` is fetched on every
page view; running a task each time would cost a download and a resize per view. The cache
maps (account, task definition in canonical form) to the key of the task that answered it,
so a repeated URL waits for, or redirects to, that task's output instead of creating another.

It only remembers keys, never results: the handler re-reads the task's status and checks
that the output file still exists (deleted through the storage API, expired, or swept)
before trusting an entry, and forgets entries whose task failed. So an entry can be stale
but never wrong, and it lives at most as long as the file it points to.

It is in memory and bounded (least recently used entries go first): a restart only costs
one task per URL. With several nodes each keeps its own, so a URL costs at most one task
per node; sharing it would need a table.
"""

from __future__ import annotations

import json
from collections import OrderedDict

import orjson

MAX_ENTRIES = 10_000


def canonical(account_id: int, definition: object) -> tuple[int, bytes]:
    """The cache key of a task definition: key order and spacing do not matter."""
    try:
        return account_id, orjson.dumps(definition, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:  # an integer beyond 64 bits, which only the standard encoder takes
        text = json.dumps(definition, sort_keys=True, default=str, separators=(",", ":"))
        return account_id, text.encode()


class ResultCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._keys: OrderedDict[tuple[int, bytes], str] = OrderedDict()

    def get(self, cache_key: tuple[int, bytes]) -> str | None:
        task_key = self._keys.get(cache_key)
        if task_key is not None:
            self._keys.move_to_end(cache_key)
        return task_key

    def put(self, cache_key: tuple[int, bytes], task_key: str) -> None:
        self._keys[cache_key] = task_key
        self._keys.move_to_end(cache_key)
        while len(self._keys) > self.max_entries:
            self._keys.popitem(last=False)

    def forget(self, cache_key: tuple[int, bytes], task_key: str) -> None:
        """Drop the entry if it still names ``task_key`` (a newer task may have replaced it)."""
        if self._keys.get(cache_key) == task_key:
            del self._keys[cache_key]

    def __len__(self) -> int:
        return len(self._keys)

"""Which task already answered a thumbnail URL: the result cache of ``/v1/create_file``.

An ``<img src=".../create_file/cat.jpg?task_name=image.thumb&url=...">`` is fetched on every
page view; running a task each time would cost a download and a resize per view. The cache
maps (account, task definition in canonical form) to the key of the task that answered it,
so a repeated URL waits for, or redirects to, that task's output instead of creating another.

It only remembers keys, never results: the handler re-reads the task's status and checks
that the output file still exists (deleted through the storage API, expired, or swept)
before trusting an entry, and forgets entries whose task failed. So an entry can be stale
but never wrong, and it lives at most as long as the file it points to.

An entry holds a digest of the definition, never the definition: a definition may be
megabytes (``task_metas`` up to the body limit), and the task's row already holds it in full.
The cache is bounded in bytes (least recently used entries go first), so whatever clients
send it holds at most ``MAX_BYTES``: a restart only costs one task per URL. With several
nodes each keeps its own, so a URL costs at most one task per node; sharing it would need a
table.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import OrderedDict

import orjson

# Memory the cache may hold: about 30,000 entries (a digest and a task key each).
MAX_BYTES = 8 * 1024 * 1024
# What one entry costs besides its task key: the key tuple, the digest, the dict's slot.
ENTRY_OVERHEAD = 200

CacheKey = tuple[int, bytes]


def canonical(account_id: int, definition: object) -> CacheKey:
    """The cache key of a task definition: key order and spacing do not matter.

    The key is the SHA-256 of the definition's canonical JSON, so a key is as small for a
    megabyte of ``task_metas`` as for a thumbnail's four parameters.
    """
    try:
        text = orjson.dumps(definition, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:  # an integer beyond 64 bits, which only the standard encoder takes
        text = json.dumps(definition, sort_keys=True, default=str, separators=(",", ":")).encode()
    return account_id, hashlib.sha256(text).digest()


def entry_bytes(cache_key: CacheKey, task_key: str) -> int:
    """What an entry costs the cache, counted in bytes."""
    return ENTRY_OVERHEAD + len(cache_key[1]) + sys.getsizeof(task_key)


class ResultCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0  # bytes held, as ``entry_bytes`` counts them
        self._keys: OrderedDict[CacheKey, str] = OrderedDict()

    def get(self, cache_key: CacheKey) -> str | None:
        task_key = self._keys.get(cache_key)
        if task_key is not None:
            self._keys.move_to_end(cache_key)
        return task_key

    def put(self, cache_key: CacheKey, task_key: str) -> None:
        self._drop(cache_key)
        self._keys[cache_key] = task_key
        self.size += entry_bytes(cache_key, task_key)
        while self.size > self.max_bytes and self._keys:
            self._drop(next(iter(self._keys)))

    def forget(self, cache_key: CacheKey, task_key: str) -> None:
        """Drop the entry if it still names ``task_key`` (a newer task may have replaced it)."""
        if self._keys.get(cache_key) == task_key:
            self._drop(cache_key)

    def _drop(self, cache_key: CacheKey) -> None:
        task_key = self._keys.pop(cache_key, None)
        if task_key is not None:
            self.size -= entry_bytes(cache_key, task_key)

    def __len__(self) -> int:
        return len(self._keys)

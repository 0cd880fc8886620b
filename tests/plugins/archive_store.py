"""``archive`` (tests only): a store added the way a third-party one is, by one module named
in ``DRAGON_STORE_MODULES``. Its files go to the configured backend like persistent ones;
its policy says they are listed by the storage API and counted in the account's usage."""

from dragon.stores.base import BackedStore


class Store(BackedStore):
    type = "archive"
    listed = True
    counted = True

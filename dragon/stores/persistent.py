"""persistent (the default): kept until deleted, or until the account's expiration days."""

from dragon.stores.base import BackedStore


class Store(BackedStore):
    type = "persistent"

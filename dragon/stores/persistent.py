"""persistent (the default): kept until deleted, or until the account's expiration days."""

from dragon.stores import BackedStore


class Store(BackedStore):
    type = "persistent"

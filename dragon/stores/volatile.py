"""volatile: deleted after ``volatile_days`` (7) by the sweeper; not listed, not in usage."""

from dragon.stores.base import BackedStore


class Store(BackedStore):
    type = "volatile"
    listed = False
    counted = False

    def expires_at(self, now: float) -> float:
        return now + self.stores.settings.volatile_days * 86400.0

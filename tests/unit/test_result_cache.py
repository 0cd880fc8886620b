"""The /v1/create_file result cache's keys."""

from dragon.engine.result_cache import ResultCache, canonical, entry_bytes


def test_a_definition_with_an_integer_beyond_64_bits_has_a_cache_key():
    """Found by schemathesis: marshmallow turns 1.2e31 into an int orjson cannot encode."""
    big = {"task_name": "x", "n": 11718811705031268309030034997248, "a": [1]}
    assert canonical(1, big) == canonical(1, dict(reversed(list(big.items()))))


def test_the_cache_is_bounded_in_bytes_and_evicts_the_least_recently_used():
    cache = ResultCache(max_bytes=10 * entry_bytes(canonical(1, {}), "k0"))
    for i in range(30):
        cache.put(canonical(1, {"i": i}), f"k{i % 10}")
        cache.get(canonical(1, {"i": 0}))  # kept in use: never the least recently used
    assert len(cache) == 10 and cache.size <= cache.max_bytes
    assert cache.get(canonical(1, {"i": 0})) == "k0" and cache.get(canonical(1, {"i": 1})) is None
    cache.forget(canonical(1, {"i": 0}), "k0")
    assert len(cache) == 9 and cache.size == 9 * entry_bytes(canonical(1, {}), "k0")

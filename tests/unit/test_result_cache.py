"""The /v1/create_file result cache's keys."""

from dragon.engine.result_cache import canonical


def test_a_definition_with_an_integer_beyond_64_bits_has_a_cache_key():
    """Found by schemathesis: marshmallow turns 1.2e31 into an int orjson cannot encode."""
    big = {"task_name": "x", "n": 11718811705031268309030034997248, "a": [1]}
    assert canonical(1, big) == canonical(1, dict(reversed(list(big.items()))))

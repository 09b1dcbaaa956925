"""The Redis cache backend (onboarding.cache): Django's, with one redis client per connection pool
instead of one per operation."""
from __future__ import annotations

import os

import pytest

from onboarding.cache import RedisCache


def test_one_client_per_pool_and_django_server_choice() -> None:
    """No server is needed: building clients and pools does not connect."""
    backend = RedisCache("redis://127.0.0.1:1/0,redis://127.0.0.1:2/0", {})
    client = backend._cache
    writer = client.get_client(write=True)
    assert client.get_client(write=True) is writer
    assert writer.connection_pool.connection_kwargs["port"] == 1  # writes go to the first server
    reader = client.get_client("key")
    assert client.get_client("other") is reader and reader is not writer
    assert reader.connection_pool.connection_kwargs["port"] == 2  # reads to the others


@pytest.mark.services
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set: no Redis to test against")
def test_operations_behave_as_djangos_backend() -> None:
    backend = RedisCache(os.environ["REDIS_URL"], {"KEY_PREFIX": "autoriza-test-cache"})
    try:
        backend.set("a", {"x": [1, 2]}, 30)
        assert backend.get("a") == {"x": [1, 2]}
        assert backend.add("a", "other", 30) is False
        backend.set("n", 1, 30)
        assert backend.incr("n", 2) == 3
        assert backend.get_many(["a", "n", "missing"]) == {"a": {"x": [1, 2]}, "n": 3}
        assert backend.delete("a") is True and backend.get("a") is None
    finally:
        backend.delete_many(["a", "n"])

"""The Redis cache backend (`CACHES["default"]["BACKEND"]` when REDIS_URL is set): Django's, reusing
its `redis.Redis` clients.

Django's `RedisCacheClient.get_client()` builds a new `redis.Redis` object for every cache operation;
that constructor fills a table of ≈ 170 response callbacks each time, ≈ 0.07 ms of CPU — half of a
`cache.get()` — and the live status poll makes one per rendered answer (login throttling and
sessions use the cache too). A `redis.Redis` holds no connection of its own (it borrows one from the
pool per command) and is thread-safe, so one per connection pool is enough. Keys, serialization,
pools and every operation are Django's, unchanged.
"""
from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient

__all__ = ["RedisCache", "RedisCacheClient"]


class RedisCacheClient(DjangoRedisCacheClient):
    """Django's client, with one `redis.Redis` per connection pool instead of one per operation."""

    def __init__(self, servers: list[str], **options: Any) -> None:
        super().__init__(servers, **options)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: object = None, *, write: bool = False) -> Any:
        """The `redis.Redis` for the server Django would pick (writes: the first; reads: any other)."""
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            # Two threads may both build one here; either is fine, both use the same pool.
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    """Django's Redis cache backend, using `RedisCacheClient` above."""

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient

"""The page cache: one cache in Redis (CACHE_URL, the store's database 1),
shared by every web instance. A worker clears an entry when an order
changes what it shows, so web.1 and web.2 never disagree about the stock.

A cache that cannot answer is a miss, never an error page: the pages are
built from PostgreSQL either way.
"""

import common


class Cache:
    def __init__(self, url=None):
        url = url or common.setting("CACHE_URL")
        if not url.startswith(("redis://", "rediss://")):
            common.say(f"CACHE_URL must be a redis:// URL (the store), not {url.split(':')[0]}:")
            raise SystemExit(1)
        self.redis = common.store(url, timeout=1)

    def get(self, key):
        try:
            value = self.redis.get(f"cache:{key}")
        except common.redis.RedisError:
            return None
        return value.decode() if value is not None else None

    def set(self, key, value, seconds):
        try:
            self.redis.set(f"cache:{key}", value, ex=max(int(seconds), 1))
        except common.redis.RedisError:
            pass

    def delete(self, key):
        try:
            self.redis.delete(f"cache:{key}")
        except common.redis.RedisError:
            pass

"""The page cache, chosen by CACHE_URL.

- `memory://`: a dict inside each process. Every web instance has its own,
  and a worker cannot clear them: after an order, web.1 and web.2 may show
  different stock until their entries expire.
- `redis://host:port/db`: one cache in the store, shared by every instance;
  a worker clears it when an order changes the stock.
"""

import os
import threading
import time

import resp


class MemoryCache:
    def __init__(self):
        self.lock = threading.Lock()
        self.entries = {}

    def get(self, key):
        with self.lock:
            value, until = self.entries.get(key, (None, 0))
            return value if until > time.monotonic() else None

    def set(self, key, value, seconds):
        with self.lock:
            self.entries[key] = (value, time.monotonic() + seconds)

    def delete(self, key):
        with self.lock:
            self.entries.pop(key, None)


class StoreCache:
    def __init__(self, url):
        self.url = url
        self.local = threading.local()

    def _call(self, *args):
        store = getattr(self.local, "store", None)
        try:
            if store is None:
                store = self.local.store = resp.Store(self.url, timeout=2)
            return store.call(*args)
        except (OSError, resp.StoreError):
            # A cache that cannot answer is a miss, never an error page.
            self.local.store = None
            return None

    def get(self, key):
        value = self._call("GET", f"cache:{key}")
        return value.decode() if value is not None else None

    def set(self, key, value, seconds):
        self._call("SET", f"cache:{key}", value, "EX", max(int(seconds), 1))

    def delete(self, key):
        self._call("DEL", f"cache:{key}")


def from_env():
    url = os.environ.get("CACHE_URL", "memory://")
    if url.startswith("memory://"):
        return MemoryCache()
    if url.startswith("redis://"):
        resp.parse_url(url)
        return StoreCache(url)
    raise resp.StoreError(f"CACHE_URL must be memory:// or redis://..., got {url.split(':')[0]}:")

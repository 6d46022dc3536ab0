"""A tiny client for the Redis protocol (RESP2), standard library only.

Every process of the shop finds the store through REDIS_URL
(redis://[:password@]host:port/db) and talks to it through this module,
never directly to another process.
"""

import os
import socket
import time
import urllib.parse


class StoreError(Exception):
    """The store answered with an error, or could not be reached."""


def parse_url(url):
    """(host, port, password, db) from a redis:// URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "redis":
        raise StoreError(f"REDIS_URL must start with redis://, got {parts.scheme}://")
    db = parts.path.lstrip("/") or "0"
    if not db.isdigit():
        raise StoreError(f"REDIS_URL: database must be a number, got {db!r}")
    return parts.hostname or "127.0.0.1", parts.port or 6379, parts.password, int(db)


def safe_url(url):
    """The URL without its password, for log lines."""
    host, port, _, db = parse_url(url)
    return f"redis://{host}:{port}/{db}"


class Store:
    """One connection to the store. Not shared between threads."""

    def __init__(self, url, timeout=None):
        host, port, password, db = parse_url(url)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        if password:
            self.call("AUTH", password)
        if db:
            self.call("SELECT", db)

    def close(self):
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass

    def call(self, *args):
        """Sends one command and returns its reply (bytes, int, list or None)."""
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            if not isinstance(arg, bytes):
                arg = str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
        try:
            self.sock.sendall(b"".join(out))
            return self._reply()
        except OSError as e:
            raise StoreError(f"store connection failed: {e}") from e

    def _reply(self):
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise StoreError("store closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise StoreError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.reader.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._reply() for _ in range(n)]
        raise StoreError(f"unexpected reply from the store: {line!r}")


def connect(url=None, wait=None, stopping=None):
    """Connects to REDIS_URL, retrying for `wait` seconds (STORE_WAIT, default 15).

    pm starts the store first when it honours depends_on; the retry makes every
    process cope anyway (a store that restarts, a runner without ordering).
    """
    url = url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if wait is None:
        wait = float(os.environ.get("STORE_WAIT", "15"))
    deadline = time.monotonic() + wait
    delay = 0.1
    while True:
        try:
            store = Store(url, timeout=5)
            store.call("PING")
            store.sock.settimeout(None)
            return store
        except (OSError, StoreError) as e:
            if time.monotonic() >= deadline or (stopping and stopping.is_set()):
                raise StoreError(f"cannot reach the store at {safe_url(url)}: {e}") from e
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

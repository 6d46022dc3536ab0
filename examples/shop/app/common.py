"""What every Python process of the shop shares: its name and settings, its
clients for the two backing services, found through DATABASE_URL (PostgreSQL:
the catalog, customers and orders) and REDIS_URL (Redis: the job queue), and
a clean stop on SIGTERM (what pm, systemd, Docker and Kubernetes send first).

The clients are the maintained libraries, redis-py and psycopg 3. When one of
them cannot be imported by this interpreter, the process says which package
to install and exits 1: the shop never falls back to something else.
"""

import contextlib
import importlib
import os
import queue
import signal
import sys
import threading

# pm sets PS (and DYNO, as Heroku does) to the instance name: web.1, worker.2;
# under `pm run` it is the script's name.
INSTANCE = os.environ.get("PS") or os.environ.get("DYNO") or os.path.basename(sys.argv[0])
CURRENCY = os.environ.get("CURRENCY", "EUR")
QUEUE = "queue:jobs"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def say(text):
    print(f"{INSTANCE}: {text}", flush=True)


def _clients():
    """redis and psycopg, or one line naming what to install, and exit 1."""
    found, missing = {}, []
    for module, debian, pip in (("redis", "python3-redis", "redis"),
                                ("psycopg", "python3-psycopg", "psycopg[binary]")):
        try:
            found[module] = importlib.import_module(module)
        except ImportError:
            missing.append((module, debian, pip))
    if missing:
        names = " and ".join(m for m, _, _ in missing)
        debian = " ".join(d for _, d, _ in missing)
        say(
            f"the Python module{'s' if len(missing) > 1 else ''} {names} cannot be imported by "
            f"{sys.executable}: python3 -m pip install -r requirements.txt "
            f"(or, for Debian's /usr/bin/python3: apt install {debian})"
        )
        sys.exit(1)
    return found["redis"], found["psycopg"]


redis, psycopg = _clients()
# What a lost or refused connection raises, from either service.
StoreDown = (redis.ConnectionError, redis.TimeoutError)
DatabaseDown = (psycopg.OperationalError, psycopg.InterfaceError)


def setting(name):
    value = os.environ.get(name)
    if not value:
        say(f"{name} is not set: run it through pm, which reads .env")
        sys.exit(1)
    return value


def safe_url(url):
    """A URL without its user and password, for messages."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def store(url=None, timeout=5):
    """A Redis client (thread-safe, with its own connection pool). Commands
    wait at most `timeout` seconds, so a dead store is noticed."""
    url = url or setting("REDIS_URL")
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=2)


class Database:
    """A few PostgreSQL connections shared by the threads of one process.
    `with db.connection() as conn:` lends one (autocommit; use
    `with conn.transaction():` for several statements at once); a
    connection that failed is closed rather than lent again."""

    def __init__(self, url=None, keep=4):
        self.url = url or setting("DATABASE_URL")
        self.keep = keep
        self.idle = queue.LifoQueue()

    @contextlib.contextmanager
    def connection(self, fresh=False):
        conn = None
        if not fresh:
            try:
                conn = self.idle.get_nowait()
            except queue.Empty:
                pass
        if conn is None:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=3)
        ok = False
        try:
            yield conn
            ok = True
        finally:
            idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if ok and idle and not conn.closed and self.idle.qsize() < self.keep:
                self.idle.put(conn)
            else:
                conn.close()

    def execute(self, sql, params=None, retry=True):
        """One statement; its rows (an empty list for a statement without).
        A connection kept from before may have died with a database restart:
        with `retry` (for statements safe to repeat) it runs once more, on a
        new connection."""
        try:
            return self._execute(sql, params, fresh=False)
        except DatabaseDown:
            # The others kept from before are likely dead too.
            with contextlib.suppress(queue.Empty):
                while True:
                    self.idle.get_nowait().close()
            if not retry:
                raise
        return self._execute(sql, params, fresh=True)

    def _execute(self, sql, params, fresh):
        with self.connection(fresh) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []


def on_stop():
    """An Event set by SIGTERM or SIGINT: long-running loops check it."""
    stopping = threading.Event()

    def handler(signum, frame):
        stopping.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stopping


def wait_for(what, check, stopping):
    """Calls check() until it stops raising a connection error. Says once
    that it waits, and once that it is back; False if stopped first."""
    said = False
    while not stopping.is_set():
        try:
            check()
            if said:
                say(f"{what} is back")
            return True
        except StoreDown + DatabaseDown as e:
            if not said:
                say(f"waiting for {what}: {one_line(e)}")
                said = True
        stopping.wait(0.5)
    return False


def one_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def money(cents):
    return f"{cents // 100}.{cents % 100:02d} {CURRENCY}"

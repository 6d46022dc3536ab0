"""What every process of the shop shares: its name, its settings, and a clean
stop on SIGTERM (what pm, systemd, Docker and Kubernetes all send first)."""

import json
import os
import signal
import threading

# pm sets PS (and DYNO, as Heroku does) to the instance name: web.1, worker.2.
INSTANCE = os.environ.get("PS") or os.environ.get("DYNO") or "local"
CURRENCY = os.environ.get("CURRENCY", "EUR")
QUEUE = "queue:jobs"


def on_stop():
    """An Event set by SIGTERM or SIGINT: long-running loops check it."""
    stopping = threading.Event()

    def handler(signum, frame):
        stopping.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stopping


def ended(stopping, error=None):
    """The exit code of a process whose loop is over: 0 once stopped, 1 when
    the store was lost while nobody asked it to stop. (When a whole stop is
    under way, the store may be gone a moment before our own SIGTERM.)"""
    if error is not None and not stopping.wait(1.0):
        print(f"{INSTANCE}: {error}")
        return 1
    print(f"{INSTANCE}: stopped")
    return 0


def money(cents):
    return f"{cents // 100}.{cents % 100:02d} {CURRENCY}"


def decode(fields):
    """A flat HGETALL reply as a dict of str."""
    it = iter(fields or [])
    return {k.decode(): v.decode() for k, v in zip(it, it)}


def enqueue(store, job):
    """Jobs are JSON objects pushed on the left and popped on the right: FIFO."""
    return store.call("LPUSH", QUEUE, json.dumps(job, sort_keys=True))

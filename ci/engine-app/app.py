"""The engine tests' app: `release`, `web` and `worker` in one file.

web answers GET / with the instance that served it (host name and port),
GET /healthz with 200 once the release has run, POST /orders by queueing an
order in Redis (202, its id), and GET /orders/ID with the order's status;
worker takes orders off the queue and marks them processed.
"""

import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis

store = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5)
me = f"{socket.gethostname()}:{os.environ.get('PORT', '')}"


def release():
    store.set("released", "1")
    print("release: done", flush=True)


class Web(BaseHTTPRequestHandler):
    def answer(self, code, text):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", me)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/healthz":
            try:
                ok = store.get("released") == b"1"
            except redis.RedisError as e:
                return self.answer(503, f"store: {e}")
            return self.answer(200 if ok else 503, "ok" if ok else "no release yet")
        if self.path.startswith("/orders/"):
            status = store.get("order:" + self.path[len("/orders/"):])
            if status is None:
                return self.answer(404, "no such order")
            return self.answer(200, status.decode())
        self.answer(200, me)

    def do_POST(self):
        if self.path != "/orders":
            return self.answer(404, "not found")
        order = store.incr("orders:last")
        store.set(f"order:{order}", "queued")
        store.lpush("orders", order)
        self.answer(202, str(order))

    def log_message(self, *args):
        pass


def web():
    server = ThreadingHTTPServer((os.environ["PM_LISTEN_HOST"], int(os.environ["PORT"])), Web)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"web: listening on {me}", flush=True)
    server.serve_forever()


def worker():
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    while not stopping:
        try:
            job = store.brpop("orders", timeout=1)
        except redis.RedisError as e:
            print(f"worker: store: {e}", flush=True)
            continue
        if job:
            order = job[1].decode()
            store.set(f"order:{order}", f"processed by {me}")
            print(f"worker: order {order} processed", flush=True)


{"release": release, "web": web, "worker": worker}[sys.argv[1]]()

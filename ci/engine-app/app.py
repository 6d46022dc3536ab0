"""The engine tests' app: `release`, `web` and `worker` in one file.

The web API is the shop's (examples/shop), so the same checks run on both:
GET / names the instance that served it (host name and port), and every
request but /healthz is logged as `GET / -> 200`; GET /healthz is 200 once
the release has run; POST /orders queues an order in Redis and answers 202
`order ID queued by INSTANCE: /orders/ID`; GET /orders/ID is the order as
JSON, `{"id": ID, "status": "queued"}` until a worker has made it "paid".
"""

import json

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
    def log_message(self, fmt, *args):
        if not self.path.startswith("/healthz"):
            print(f"{me}: {self.command} {self.path} -> {args[1] if len(args) > 1 else '-'}", flush=True)

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
            order = self.path[len("/orders/"):].split("?")[0]
            status = store.get("order:" + order)
            if status is None:
                return self.answer(404, "no such order")
            return self.answer(200, json.dumps({"id": int(order), "status": status.decode()}))
        self.answer(200, me)

    def do_POST(self):
        if self.path != "/orders":
            return self.answer(404, "not found")
        order = store.incr("orders:last")
        store.set(f"order:{order}", "queued")
        store.lpush("orders", order)
        self.answer(202, f"order {order} queued by {me}: /orders/{order}")


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
            store.set(f"order:{order}", "paid")
            print(f"worker: order {order} processed", flush=True)


{"release": release, "web": web, "worker": worker}[sys.argv[1]]()

"""The web process: the shop's pages, on 127.0.0.1:$PORT.

    GET  /            the catalog with stock, the latest orders and report,
                      and which instance served the page (web.1, web.2...)
    GET  /healthz     200 when the store answers PING, else 503
    POST /orders      sku=TEA-003&qty=2: queues an order for the workers (202)
                      and answers with its receipt link
    GET  /orders/ID?token=...
                      the order's outcome as JSON (404 while it is queued);
                      the token, signed with SESSION_SECRET, keeps one
                      customer from reading another's orders

It never processes an order itself: it queues a job in the store and a
worker picks it up, so web instances can be added or removed at any time.
"""

import hashlib
import hmac
import html
import json
import os
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cache
import common
import resp

URL = os.environ.get("REDIS_URL", "")
SHOP = os.environ.get("SHOP_NAME", "Tea shop")
CACHE = cache.from_env()
CACHE_SECONDS = float(os.environ.get("CACHE_SECONDS", "5"))
SECRET = os.environ.get("SESSION_SECRET", "").encode()
SKU = re.compile(r"^[A-Z]+-[0-9]{3}$")
local = threading.local()


def store():
    """This thread's connection to the store (each request thread has one)."""
    if getattr(local, "store", None) is None:
        local.store = resp.Store(URL, timeout=5)
    return local.store


def call(*args):
    """A store command, retried once on a fresh connection."""
    try:
        return store().call(*args)
    except (OSError, resp.StoreError):
        local.store = None
        return store().call(*args)


def token(order_id):
    return hmac.new(SECRET, str(order_id).encode(), hashlib.sha256).hexdigest()[:16]


def catalog_html():
    cached = CACHE.get("catalog")
    if cached is not None:
        return cached
    rows = []
    for sku in call("LRANGE", "catalog", 0, -1) or []:
        sku = sku.decode()
        p = common.decode(call("HGETALL", f"product:{sku}"))
        stock = int(call("GET", f"stock:{sku}") or 0)
        buy = (
            f'<form method="post" action="/orders"><input type="hidden" name="sku" value="{sku}">'
            f'<input type="hidden" name="back" value="1"><button>buy</button></form>'
            if stock > 0
            else "sold out"
        )
        rows.append(
            f"<tr><td>{sku}</td><td>{html.escape(p.get('name', '?'))}</td>"
            f"<td>{html.escape(p.get('category', ''))}</td>"
            f"<td>{common.money(int(p.get('price_cents', 0)))} / {html.escape(p.get('unit', ''))}</td>"
            f"<td>{stock}</td><td>{buy}</td></tr>"
        )
    if not rows:
        return "<p>The catalog is empty: has the release phase run?</p>"
    page = (
        "<table><tr><th>SKU</th><th>product</th><th>kind</th><th>price</th>"
        "<th>stock</th><th></th></tr>\n" + "\n".join(rows) + "\n</table>"
    )
    CACHE.set("catalog", page, CACHE_SECONDS)
    return page


def page():
    recent = []
    for order_id in call("LRANGE", "orders:recent", 0, 9) or []:
        raw = call("GET", f"order:{order_id.decode()}")
        if raw:
            o = json.loads(raw)
            recent.append(f"<li>#{o['id']} {o['status']}: {html.escape(o['detail'])} ({o['by']})</li>")
    report = call("GET", "report:latest")
    queued = call("LLEN", common.QUEUE)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(SHOP)}</title></head>
<body>
<h1>{html.escape(SHOP)}</h1>
<p>Served by <b>{common.INSTANCE}</b> (pid {os.getpid()}). Jobs waiting: {queued}.</p>
{catalog_html()}
<h2>Latest orders</h2>
<ul>{"".join(recent) or "<li>none yet</li>"}</ul>
<h2>Sales report</h2>
<p>{html.escape(report.decode()) if report else "none yet: the clock schedules one"}</p>
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "shop"

    def send(self, code, body, content_type="text/plain; charset=utf-8", headers=()):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Served-By", common.INSTANCE)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path == "/healthz":
                return self.healthz()
            if path == "/":
                return self.send(200, page(), "text/html; charset=utf-8")
            m = re.fullmatch(r"/orders/([0-9]+)", path)
            if m:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                given = query.get("token", [""])[0]
                if not hmac.compare_digest(given, token(m.group(1))):
                    return self.send(403, "wrong or missing token\n")
                raw = call("GET", f"order:{m.group(1)}")
                if raw is None:
                    return self.send(404, f"order {m.group(1)} is not processed (yet)\n")
                return self.send(200, raw.decode() + "\n", "application/json")
            self.send(404, "not found\n")
        except (OSError, resp.StoreError) as e:
            self.send(503, f"the store is unavailable: {e}\n")

    do_HEAD = do_GET

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path != "/orders":
            return self.send(404, "not found\n")
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(min(length, 4096)).decode(errors="replace"))
        sku = form.get("sku", [""])[0]
        qty = form.get("qty", ["1"])[0]
        if not SKU.match(sku) or not qty.isdigit() or not 1 <= int(qty) <= 99:
            return self.send(400, "expected sku=XXX-000 and qty=1..99\n")
        try:
            order_id = call("INCR", "order:next")
            job = {"kind": "order", "id": order_id, "sku": sku, "qty": int(qty), "by": common.INSTANCE}
            call("LPUSH", common.QUEUE, json.dumps(job, sort_keys=True))
        except (OSError, resp.StoreError) as e:
            return self.send(503, f"the store is unavailable: {e}\n")
        if form.get("back"):
            return self.send(303, "", headers=[("Location", "/")])
        receipt = f"/orders/{order_id}?token={token(order_id)}"
        self.send(202, f"order {order_id} queued by {common.INSTANCE}: {receipt}\n")

    def healthz(self):
        try:
            probe = resp.Store(URL, timeout=1)
            try:
                probe.call("PING")
            finally:
                probe.close()
        except (OSError, resp.StoreError) as e:
            return self.send(503, f"store unreachable: {e}\n")
        self.send(200, "ok\n")

    def log_message(self, fmt, *args):
        # Health probes come every second: only the other requests are logged.
        if not self.path.startswith("/healthz"):
            print(f"{common.INSTANCE}: {self.command} {self.path} -> {args[1] if len(args) > 1 else '-'}")


def main():
    stopping = common.on_stop()
    port = int(os.environ.get("PORT", "5000"))
    try:
        resp.connect(URL, stopping=stopping).close()
    except resp.StoreError as e:
        print(f"{common.INSTANCE}: {e}")
        return 1
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True

    def watch():
        stopping.wait()
        server.shutdown()

    threading.Thread(target=watch, daemon=True).start()
    print(f"{common.INSTANCE}: {SHOP} on http://127.0.0.1:{port}")
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    print(f"{common.INSTANCE}: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

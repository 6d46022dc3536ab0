"""The web process: the shop's pages, on $PM_LISTEN_HOST:$PORT.

    GET  /            the catalog with stock, the latest orders and sales
                      report, and which instance served the page (web.1...)
    GET  /healthz     200 when both the store (Redis) and the database
                      (PostgreSQL) answer, else 503 naming the one that does not
    POST /orders      sku=TEA-003&qty=2 (and optionally customer=ID): saves
                      the order in PostgreSQL as queued, queues a job for the
                      workers in Redis, and answers 202 with its receipt link
    GET  /orders/ID?token=...
                      the order as JSON: its status (queued, paid, rejected),
                      what was bought and which worker settled it; the token,
                      signed with SESSION_SECRET, keeps one customer from
                      reading another's orders

It never settles an order itself, so web instances can be added or removed
at any time. When the store is down an order is still saved: the workers
queue it again once the store is back (app/worker.py).
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

SHOP = os.environ.get("SHOP_NAME", "Tea shop")
CACHE_SECONDS = float(os.environ.get("CACHE_SECONDS", "5"))
SECRET = os.environ.get("SESSION_SECRET", "").encode()
SKU = re.compile(r"^[A-Z]+-[0-9]{3}$")
DB = common.Database(keep=8)
STORE = common.store()
# /healthz answers within its probe's timeout even when a service hangs.
PROBE = common.store(timeout=0.5)
CACHE = cache.Cache()


def token(order_id):
    return hmac.new(SECRET, str(order_id).encode(), hashlib.sha256).hexdigest()[:16]


def catalog_html():
    cached = CACHE.get("catalog")
    if cached is not None:
        return cached
    rows = []
    for sku, name, category, unit, price, stock in DB.execute(
        "SELECT sku, name, category, unit, price_cents, stock FROM products ORDER BY sku"
    ):
        buy = (
            f'<form method="post" action="/orders"><input type="hidden" name="sku" value="{sku}">'
            f'<input type="hidden" name="back" value="1"><button>buy</button></form>'
            if stock > 0
            else "sold out"
        )
        rows.append(
            f"<tr><td>{sku}</td><td>{html.escape(name)}</td><td>{html.escape(category)}</td>"
            f"<td>{common.money(price)} / {html.escape(unit)}</td>"
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
    recent = [
        f"<li>#{id} {status}: {html.escape(detail or sku)} ({html.escape(by or 'waiting')})</li>"
        for id, status, detail, sku, by in DB.execute(
            "SELECT id, status, detail, sku, processed_by FROM orders ORDER BY id DESC LIMIT 10"
        )
    ]
    report = DB.execute(
        "SELECT paid, rejected, revenue_cents, made_at FROM sales_reports ORDER BY id DESC LIMIT 1"
    )
    if report:
        paid, rejected, revenue, at = report[0]
        report_line = (
            f"{paid} paid, {rejected} rejected, revenue {common.money(revenue)} "
            f"in the 24 hours before {at:%H:%M:%S}"
        )
    else:
        report_line = "none yet: the clock schedules one"
    try:
        queued = STORE.llen(common.QUEUE)
    except common.StoreDown:
        queued = "unknown (the store is down)"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(SHOP)}</title></head>
<body>
<h1>{html.escape(SHOP)}</h1>
<p>Served by <b>{common.INSTANCE}</b> (pid {os.getpid()}). Jobs waiting: {queued}.</p>
{catalog_html()}
<h2>Latest orders</h2>
<ul>{"".join(recent) or "<li>none yet</li>"}</ul>
<h2>Sales report</h2>
<p>{html.escape(report_line)}</p>
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
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.path == "/healthz":
                return self.healthz()
            if url.path == "/":
                return self.send(200, page(), "text/html; charset=utf-8")
            m = re.fullmatch(r"/orders/([0-9]{1,18})", url.path)
            if m:
                return self.receipt(m.group(1), urllib.parse.parse_qs(url.query))
            self.send(404, "not found\n")
        except common.DatabaseDown as e:
            self.send(503, f"the database is unavailable: {common.one_line(e)}\n")

    do_HEAD = do_GET

    def receipt(self, order_id, query):
        if not hmac.compare_digest(query.get("token", [""])[0], token(order_id)):
            return self.send(403, "wrong or missing token\n")
        rows = DB.execute(
            "SELECT id, status, detail, processed_by FROM orders WHERE id = %s", (int(order_id),)
        )
        if not rows:
            return self.send(404, f"no order {order_id}\n")
        id, status, detail, by = rows[0]
        body = json.dumps({"id": id, "status": status, "detail": detail, "by": by})
        self.send(200, body + "\n", "application/json")

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path != "/orders":
            return self.send(404, "not found\n")
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(min(length, 4096)).decode(errors="replace"))
        sku = form.get("sku", [""])[0]
        qty = form.get("qty", ["1"])[0]
        customer = form.get("customer", [""])[0]
        if (not SKU.match(sku) or not qty.isdigit() or not 1 <= int(qty) <= 99
                or not (customer == "" or customer.isdigit() and len(customer) < 10)):
            return self.send(400, "expected sku=XXX-000, qty=1..99 and optionally customer=ID\n")
        try:
            (order_id,) = DB.execute(
                "INSERT INTO orders (sku, qty, customer_id, placed_by) VALUES (%s, %s, %s, %s)"
                " RETURNING id",
                (sku, int(qty), int(customer) if customer else None, common.INSTANCE),
                retry=False,
            )[0]
        except common.psycopg.errors.ForeignKeyViolation as e:
            what = "customer" if "customer" in (e.diag.constraint_name or "") else "product"
            return self.send(400, f"no such {what}\n")
        except common.DatabaseDown as e:
            return self.send(503, f"the database is unavailable: {common.one_line(e)}\n")
        try:
            STORE.lpush(common.QUEUE, json.dumps({"kind": "order", "id": order_id}))
        except common.StoreDown as e:
            # Saved all the same: a worker queues it again once the store is back.
            common.say(f"order {order_id} saved, but not queued: {common.one_line(e)}")
        if form.get("back"):
            return self.send(303, "", headers=[("Location", "/")])
        receipt = f"/orders/{order_id}?token={token(order_id)}"
        self.send(202, f"order {order_id} queued by {common.INSTANCE}: {receipt}\n")

    def healthz(self):
        try:
            PROBE.ping()
        except common.redis.RedisError as e:
            return self.send(503, f"store unreachable: {common.one_line(e)}\n")
        try:
            DB.execute("SELECT 1")
        except common.DatabaseDown as e:
            return self.send(503, f"database unreachable: {common.one_line(e)}\n")
        self.send(200, "ok\n")

    def log_message(self, fmt, *args):
        # Health probes come every second: only the other requests are logged.
        if not self.path.startswith("/healthz"):
            common.say(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else '-'}")


class Server(ThreadingHTTPServer):
    # On SIGTERM the requests in progress finish before the process exits:
    # server_close() waits for their threads.
    daemon_threads = False
    block_on_close = True


def main():
    stopping = common.on_stop()
    host = os.environ.get("PM_LISTEN_HOST", "127.0.0.1")
    port = int(common.setting("PORT"))
    server = Server((host, port), Handler)

    def watch():
        stopping.wait()
        server.shutdown()

    threading.Thread(target=watch, daemon=True).start()
    common.say(f"{SHOP} on http://{host}:{port}")
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    common.say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

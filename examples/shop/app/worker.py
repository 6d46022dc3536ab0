"""The worker: takes jobs off the queue in Redis, one at a time, and does
them against PostgreSQL, until SIGTERM.

Two kinds of job: `order` (settle an order that web inserted as queued:
take the stock and mark it paid, or reject it) and `report` (the last 24
hours of sales, scheduled by the clock). Run as many as you like
(worker=3): the queue hands each job to exactly one of them.

The store keeps nothing on disk, so a job can be lost with it (killed,
restarted). PostgreSQL still has the order, queued: a worker that starts, or
that sees the store come back, queues every such order again. A job for an
order that is no longer queued is skipped, so a duplicate does no harm.
When either service goes away the worker says so once, waits for it, and
goes on; it never exits for it.
"""

import json
import os
import sys
import time

import cache
import common

# Seconds of pretend work per order (a payment call, an e-mail), so that
# orders visibly spread over the workers.
WORK_SECONDS = float(os.environ.get("WORK_SECONDS", "0.2"))


def order(db, page_cache, order_id):
    time.sleep(WORK_SECONDS)
    with db.connection() as conn, conn.transaction():
        row = conn.execute(
            "SELECT sku, qty, status FROM orders WHERE id = %s FOR UPDATE", (order_id,)
        ).fetchone()
        if row is None:
            return f"order {order_id} is not in the database: job skipped"
        sku, qty, status = row
        if status != "queued":
            return f"order {order_id} is already {status}: duplicate job skipped"
        taken = conn.execute(
            "UPDATE products SET stock = stock - %s WHERE sku = %s AND stock >= %s"
            " RETURNING name, price_cents",
            (qty, sku, qty),
        ).fetchone()
        if taken:
            name, price = taken
            total = qty * price
            status, detail = "paid", f"{qty} x {name}, {common.money(total)}"
        else:
            (name,) = conn.execute("SELECT name FROM products WHERE sku = %s", (sku,)).fetchone()
            total, status, detail = None, "rejected", f"{qty} x {name}: out of stock"
        conn.execute(
            "UPDATE orders SET status = %s, total_cents = %s, detail = %s,"
            " processed_by = %s, processed_at = now() WHERE id = %s",
            (status, total, detail, common.INSTANCE, order_id),
        )
    if status == "paid":
        # The stock on the shop page changed, for every web instance at once.
        page_cache.delete("catalog")
    return f"order {order_id} {status}: {detail}"


def report(db):
    with db.connection() as conn, conn.transaction():
        paid, rejected, revenue = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'paid'),"
            " count(*) FILTER (WHERE status = 'rejected'),"
            " coalesce(sum(total_cents) FILTER (WHERE status = 'paid'), 0)"
            " FROM orders WHERE placed_at > now() - interval '24 hours'"
        ).fetchone()
        conn.execute(
            "INSERT INTO sales_reports (made_by, paid, rejected, revenue_cents)"
            " VALUES (%s, %s, %s, %s)",
            (common.INSTANCE, paid, rejected, revenue),
        )
    orders = "order" if paid == 1 else "orders"
    return f"report: {paid} {orders} paid, {rejected} rejected, revenue {common.money(revenue)} in the last 24 hours"


def requeue(db, store):
    """Queues again the orders PostgreSQL still has as queued. One worker
    does it at a time (a lock in the store); the others skip it."""
    if not store.set("lock:requeue", common.INSTANCE, nx=True, ex=10):
        return
    ids = [row[0] for row in db.execute("SELECT id FROM orders WHERE status = 'queued' ORDER BY id")]
    if ids:
        store.lpush(common.QUEUE, *[json.dumps({"kind": "order", "id": i}) for i in ids])
        orders = "order" if len(ids) == 1 else "orders"
        common.say(f"queued {len(ids)} waiting {orders} again (the store keeps no jobs across a restart)")


def main():
    stopping = common.on_stop()
    db = common.Database(keep=1)
    store = common.store()
    page_cache = cache.Cache()

    def reachable():
        return (common.wait_for("the store", store.ping, stopping)
                and common.wait_for("the database", lambda: db.execute("SELECT 1"), stopping))

    if not reachable():
        common.say("stopped")
        return 0
    try:
        requeue(db, store)
    except common.StoreDown + common.DatabaseDown:
        pass
    common.say(f"waiting for jobs on {common.QUEUE}")
    while not stopping.is_set():
        try:
            # A short block, so SIGTERM is noticed within a second, between jobs.
            popped = store.brpop(common.QUEUE, timeout=1)
            if popped is None:
                continue
            job = json.loads(popped[1])
            kind = job.get("kind")
            if kind == "order":
                done = order(db, page_cache, int(job["id"]))
            elif kind == "report":
                done = report(db)
                requeue(db, store)
            else:
                done = f"skipped a job of unknown kind {kind!r}"
            common.say(done)
        except common.StoreDown + common.DatabaseDown as e:
            common.say(f"lost a backing service: {common.one_line(e)}")
            if reachable():
                try:
                    requeue(db, store)
                except common.StoreDown + common.DatabaseDown:
                    pass
    common.say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

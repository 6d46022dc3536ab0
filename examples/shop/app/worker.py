"""The worker: takes jobs off the queue, one at a time, until SIGTERM.

Two kinds of job: `order` (reserve the stock, record the outcome) and
`report` (totals of every order, scheduled by the clock). Run as many as you
like (worker=3): the queue hands each job to exactly one of them.
"""

import json
import os
import sys
import time

import cache
import common
import resp

# Seconds of pretend work per order (a payment call, an e-mail), so that
# orders visibly spread over the workers.
WORK_SECONDS = float(os.environ.get("WORK_SECONDS", "0.2"))
CACHE = cache.from_env()


def order(store, job):
    sku, qty = job["sku"], int(job["qty"])
    product = common.decode(store.call("HGETALL", f"product:{sku}"))
    time.sleep(WORK_SECONDS)
    if not product:
        status, detail = "rejected", f"unknown product {sku}"
    else:
        left = store.call("INCRBY", f"stock:{sku}", -qty)
        if left < 0:
            store.call("INCRBY", f"stock:{sku}", qty)
            status, detail = "rejected", f"{qty} x {product['name']}: out of stock"
        else:
            total = qty * int(product["price_cents"])
            store.call("INCRBY", "sales:revenue_cents", total)
            # The stock shown on the shop page changed.
            CACHE.delete("catalog")
            status, detail = "paid", f"{qty} x {product['name']}, {common.money(total)}"
    store.call("INCR", f"sales:{status}")
    record = {"id": job["id"], "status": status, "detail": detail, "by": common.INSTANCE}
    store.call("SET", f"order:{job['id']}", json.dumps(record))
    store.call("LPUSH", "orders:recent", job["id"])
    store.call("LTRIM", "orders:recent", 0, 9)
    return f"order {job['id']} {status}: {detail}"


def report(store, job):
    paid = int(store.call("GET", "sales:paid") or 0)
    rejected = int(store.call("GET", "sales:rejected") or 0)
    revenue = int(store.call("GET", "sales:revenue_cents") or 0)
    orders = "order" if paid == 1 else "orders"
    line = f"{paid} {orders} paid, {rejected} rejected, revenue {common.money(revenue)}"
    store.call("SET", "report:latest", f"{line} (at {time.strftime('%H:%M:%S')})")
    return f"report: {line}"


def main():
    stopping = common.on_stop()
    try:
        store = resp.connect(stopping=stopping)
        print(f"{common.INSTANCE}: waiting for jobs on {common.QUEUE}")
        while not stopping.is_set():
            # A short block, so SIGTERM is noticed within a second, between jobs.
            popped = store.call("BRPOP", common.QUEUE, 1)
            if popped is None:
                continue
            job = json.loads(popped[1])
            kind = job.get("kind")
            if kind == "order":
                done = order(store, job)
            elif kind == "report":
                done = report(store, job)
            else:
                done = f"skipped a job of unknown kind {kind!r}"
            print(f"{common.INSTANCE}: {done}")
    except resp.StoreError as e:
        return common.ended(stopping, e)
    return common.ended(stopping)


if __name__ == "__main__":
    sys.exit(main())

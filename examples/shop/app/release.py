"""The release phase: load the catalog (data/products.json) into the store.

Idempotent, so it can run on every deploy: product details are overwritten,
the catalog index is rebuilt and swapped in at once (RENAME), and a stock
level is only set when the store has none yet, so orders already taken are
never undone by the next release.
"""

import json
import os
import sys

import common
import resp

SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "products.json")


def main():
    stopping = common.on_stop()
    with open(SEED, encoding="utf-8") as f:
        products = json.load(f)
    url = os.environ.get("REDIS_URL", "")
    try:
        store = resp.connect(url, stopping=stopping)
        set_stock = kept = 0
        store.call("DEL", "catalog:next")
        for p in products:
            if stopping.is_set():
                print("release interrupted; running it again is safe")
                return 143
            sku = p["sku"]
            store.call(
                "HSET", f"product:{sku}",
                "sku", sku, "name", p["name"], "category", p["category"],
                "unit", p["unit"], "price_cents", p["price_cents"],
            )
            if store.call("SET", f"stock:{sku}", p["stock"], "NX") is None:
                kept += 1
            else:
                set_stock += 1
            store.call("RPUSH", "catalog:next", sku)
        store.call("RENAME", "catalog:next", "catalog")
        version = store.call("INCR", "catalog:version")
    except resp.StoreError as e:
        print(f"release failed: {e}")
        return 1
    print(
        f"loaded {len(products)} products into {resp.safe_url(url)}: "
        f"catalog version {version}, {set_stock} stock levels set, {kept} kept"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

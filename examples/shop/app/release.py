"""The release phase: schema migrations, then seed data, in PostgreSQL.

pm runs it before anything else on every start (Heroku's release phase; a
oneshot unit or Job in an export), so it is safe to run again and again:

- Migrations are the plain SQL files db/migrations/NNN_name.sql, applied in
  order of NNN, each once, each in its own transaction, and recorded in the
  table schema_migrations with a checksum. A migration that fails is rolled
  back, the ones after it are not run, and the release exits 1 (so pm starts
  nothing else). A file changed after it was applied is an error too: write
  a new migration instead.
- The catalog (data/products.json) is upserted: names and prices follow the
  file, a stock level is set only for a new product, so running it again
  never undoes the orders already taken. The page cache is then cleared.
- Demo data: SEED_CUSTOMERS customers and their past orders (app/demo.py),
  loaded once per database; production sets SEED_CUSTOMERS=0.
"""

import hashlib
import json
import os
import re
import sys

import cache
import common
import demo

psycopg = common.psycopg
MIGRATIONS = os.path.join(common.ROOT, "db", "migrations")
PRODUCTS = os.path.join(common.ROOT, "data", "products.json")
NAME = re.compile(r"^([0-9]{3})_[a-z0-9_]+\.sql$")
# Two releases at once (two deploys racing) take turns.
LOCK = 7_417_000


class ReleaseError(Exception):
    pass


def migration_files():
    """(version, file name, SQL, sha256) for each migration, in order."""
    found = {}
    for name in sorted(os.listdir(MIGRATIONS)):
        match = NAME.match(name)
        if not match:
            raise ReleaseError(
                f"db/migrations/{name}: a migration is named NNN_name.sql "
                "(three digits, then a-z, 0-9 and _)"
            )
        version = int(match.group(1))
        if version in found:
            raise ReleaseError(
                f"db/migrations/{name}: version {version} is also db/migrations/{found[version][1]}"
            )
        with open(os.path.join(MIGRATIONS, name), "rb") as f:
            sql = f.read()
        found[version] = (version, name, sql.decode(), hashlib.sha256(sql).hexdigest())
    return [found[v] for v in sorted(found)]


def migrate(conn):
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied = {
        version: (name, sha, at)
        for version, name, sha, at in conn.execute(
            "SELECT version, name, sha256, applied_at FROM schema_migrations"
        )
    }
    pending = []
    for version, name, sql, sha in migration_files():
        if version not in applied:
            pending.append((version, name, sql, sha))
        elif applied[version][1] != sha:
            raise ReleaseError(
                f"db/migrations/{name} changed after it was applied on "
                f"{applied[version][2]:%Y-%m-%d %H:%M}: write a new migration instead"
            )
    for n, (version, name, sql, sha) in enumerate(pending):
        try:
            with conn.transaction():
                conn.execute(sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                    (version, name, sha),
                )
        except psycopg.Error as e:
            after = len(pending) - n - 1
            rest = f"; the {after} after it did not run" if after else ""
            raise ReleaseError(f"db/migrations/{name}: {common.one_line(e)} (rolled back{rest})") from None
        print(f"applied db/migrations/{name}", flush=True)
    return f"migrations: up to date ({len(applied) + len(pending)} applied, {len(pending)} of them now)"


def load_catalog(conn):
    with open(PRODUCTS, encoding="utf-8") as f:
        products = json.load(f)
    created = 0
    with conn.transaction():
        for p in products:
            (inserted,) = conn.execute(
                "INSERT INTO products (sku, name, category, unit, price_cents, stock)"
                " VALUES (%(sku)s, %(name)s, %(category)s, %(unit)s, %(price_cents)s, %(stock)s)"
                " ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name,"
                " category = EXCLUDED.category, unit = EXCLUDED.unit,"
                " price_cents = EXCLUDED.price_cents"
                " RETURNING xmax = 0",
                p,
            ).fetchone()
            created += inserted
    # Prices may have changed: the next page view rebuilds the catalog.
    cache.Cache().delete("catalog")
    return (
        f"catalog: {len(products)} products, {created} stock levels set, "
        f"{len(products) - created} kept"
    ), products


def load_demo(conn, products):
    wanted = int(os.environ.get("SEED_CUSTOMERS") or 0)
    row = conn.execute("SELECT customers, orders FROM seed_log WHERE name = 'demo'").fetchone()
    if row:
        return f"demo data: already loaded ({row[0]} customers, {row[1]} past orders)"
    if wanted <= 0:
        return "demo data: none (SEED_CUSTOMERS=0)"
    people = demo.customers(wanted)
    orders = demo.past_orders(people, products)
    with conn.transaction():
        with conn.cursor().copy("COPY customers (email, name, city, created_at) FROM STDIN") as copy:
            for person in people:
                copy.write_row(person)
        ids = dict(conn.execute(
            "SELECT email, id FROM customers WHERE email = ANY(%s)", ([p[0] for p in people],)
        ).fetchall())
        with conn.cursor().copy(
            "COPY orders (customer_id, sku, qty, status, total_cents, detail,"
            " placed_by, processed_by, placed_at, processed_at) FROM STDIN"
        ) as copy:
            for email, sku, qty, status, total, detail, placed_at in orders:
                copy.write_row((ids[email], sku, qty, status, total, detail,
                                "demo", "demo", placed_at, placed_at))
        conn.execute(
            "INSERT INTO seed_log (name, customers, orders) VALUES ('demo', %s, %s)",
            (len(people), len(orders)),
        )
    return f"demo data: {len(people)} customers and {len(orders)} past orders, generated"


def main():
    url = common.setting("DATABASE_URL")
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (LOCK,))
            print(migrate(conn), flush=True)
            line, products = load_catalog(conn)
            print(line, flush=True)
            print(load_demo(conn, products), flush=True)
    except ReleaseError as e:
        print(f"release failed: {e}", flush=True)
        return 1
    except psycopg.Error as e:
        print(f"release failed: {common.safe_url(url)}: {common.one_line(e)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

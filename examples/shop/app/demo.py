"""Demo data for development: customers and a year of their past orders,
generated from a fixed seed, so every fresh database gets the same rows.

Nobody real is in it: each name is a random pair of common given names and
surnames, each e-mail address is at example.com (reserved for examples,
RFC 2606), and the orders are drawn from the catalog in data/products.json.
Production sets SEED_CUSTOMERS=0 and gets none of it.
"""

import datetime
import random

from common import money

SEED = "corner-tea-shop demo data, version 1"
YEAR = 2024

GIVEN = (
    "Alex Amelia Ana Ben Carla Chen Clara David Elena Emil Eva Farah Felix "
    "Hana Ines Ivan Jonas Julia Kai Karin Lars Lea Leo Lina Luca Maya Mira "
    "Nadia Noah Nora Omar Paul Rosa Sam Sara Theo Tom Vera Yusuf Zoe"
).split()
SURNAMES = (
    "Almeida Berg Brandt Costa Dahl Ekström Fischer Garcia Hansen Horvat "
    "Ivanova Jensen Keller Kowalski Lambert Lopez Marsh Meyer Moreau Nagy "
    "Novak Olsen Park Peters Quinn Richter Rossi Santos Schmidt Silva "
    "Tanaka Varga Vogel Walsh Weber Wright Yilmaz Young Zimmer Zhou"
).split()
CITIES = (
    "Amsterdam Antwerp Barcelona Berlin Bologna Bordeaux Copenhagen Dublin "
    "Edinburgh Ghent Hamburg Krakow Leipzig Lisbon Lyon Milan Munich Porto "
    "Prague Rotterdam Seville Stockholm Utrecht Valencia Vienna Zurich"
).split()


def _moment(rng, start, end):
    """A time between start and end, in shop hours (8:00 to 22:00 UTC)."""
    day = start + datetime.timedelta(days=rng.randrange((end - start).days + 1))
    return day.replace(hour=rng.randrange(8, 22), minute=rng.randrange(60), second=rng.randrange(60))


def customers(count):
    """(email, name, city, created_at) rows, the same for the same count."""
    rng = random.Random(f"{SEED}: customers")
    start = datetime.datetime(YEAR, 1, 1, tzinfo=datetime.timezone.utc)
    end = datetime.datetime(YEAR, 9, 30, tzinfo=datetime.timezone.utc)
    rows = []
    for n in range(1, count + 1):
        given, surname = rng.choice(GIVEN), rng.choice(SURNAMES)
        email = f"{given}.{surname}.{n}@example.com".lower().replace("ö", "o")
        rows.append((email, f"{given} {surname}", rng.choice(CITIES), _moment(rng, start, end)))
    return rows


def past_orders(customer_rows, products):
    """Orders placed by those customers between their sign-up and the end
    of the year: (email, sku, qty, status, total_cents, detail, placed_at).
    Most customers order a few times, a few order often; teas sell more
    than teaware; now and then an item was out of stock."""
    rng = random.Random(f"{SEED}: orders")
    end = datetime.datetime(YEAR, 12, 31, tzinfo=datetime.timezone.utc)
    weights = [5 if p["category"] not in ("teaware", "gifts") else 1 for p in products]
    rows = []
    for email, _, _, created_at in customer_rows:
        for _ in range(rng.choices((0, 1, 2, 3, 5, 8), (15, 30, 25, 15, 10, 5))[0]):
            product = rng.choices(products, weights)[0]
            qty = rng.choices((1, 2, 3), (70, 22, 8))[0]
            placed_at = _moment(rng, created_at, end)
            if rng.random() < 0.04:
                status, total, detail = "rejected", None, f"{qty} x {product['name']}: out of stock"
            else:
                total = qty * product["price_cents"]
                status, detail = "paid", f"{qty} x {product['name']}, {money(total)}"
            rows.append((email, product["sku"], qty, status, total, detail, placed_at))
    rows.sort(key=lambda row: row[6])
    return rows

-- Customers, and every order ever placed. web inserts an order as queued
-- and queues a job naming it; a worker settles it (paid or rejected) in one
-- transaction with the stock it takes.
CREATE TABLE customers (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    name       text NOT NULL,
    city       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  integer REFERENCES customers (id),
    sku          text NOT NULL REFERENCES products (sku),
    qty          integer NOT NULL CHECK (qty BETWEEN 1 AND 99),
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'paid', 'rejected')),
    total_cents  integer CHECK (total_cents >= 0),
    detail       text,
    placed_by    text NOT NULL,
    processed_by text,
    placed_at    timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);

CREATE INDEX orders_by_customer ON orders (customer_id);
CREATE INDEX orders_by_placed_at ON orders (placed_at);
-- The orders still waiting for a worker: what is queued again after the
-- store (which keeps nothing on disk) lost their jobs.
CREATE INDEX orders_queued ON orders (id) WHERE status = 'queued';

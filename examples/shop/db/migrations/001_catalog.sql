-- The catalog: what the shop sells, at what price, and how many are left.
-- The release phase loads data/products.json into it on every deploy.
CREATE TABLE products (
    sku         text PRIMARY KEY CHECK (sku ~ '^[A-Z]+-[0-9]{3}$'),
    name        text NOT NULL,
    category    text NOT NULL,
    unit        text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    stock       integer NOT NULL CHECK (stock >= 0)
);

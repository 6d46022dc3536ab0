-- Which one-time seed data the release phase has loaded (the demo
-- customers and their past orders), so that it loads each only once.
CREATE TABLE seed_log (
    name      text PRIMARY KEY,
    customers integer NOT NULL,
    orders    integer NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);

-- The sales reports the clock schedules and a worker writes: the last 24
-- hours of orders, one row per report.
CREATE TABLE sales_reports (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    made_at       timestamptz NOT NULL DEFAULT now(),
    made_by       text NOT NULL,
    paid          integer NOT NULL,
    rejected      integer NOT NULL,
    revenue_cents bigint NOT NULL
);

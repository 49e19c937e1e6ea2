-- Orders as the reports service last saw them: one row per order, the newest snapshot wins (version).
CREATE TABLE orders (
    order_id     text        PRIMARY KEY,
    customer_id  text        NOT NULL,
    status       text        NOT NULL
        CHECK (status IN ('PENDING_PAYMENT', 'PAID', 'PAYMENT_FAILED', 'FULFILLED', 'CANCELLED')),
    net_amount   bigint      NOT NULL CHECK (net_amount >= 0),
    tax_amount   bigint      NOT NULL CHECK (tax_amount >= 0),
    gross_amount bigint      NOT NULL CHECK (gross_amount >= 0),
    currency     char(3)     NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint      NOT NULL CHECK (version >= 1)
);

CREATE TABLE order_items (
    order_id     text    NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    line_no      integer NOT NULL CHECK (line_no >= 1),
    product_id   text    NOT NULL,
    product_name text    NOT NULL,
    kind         text    NOT NULL CHECK (kind IN ('physical', 'digital')),
    quantity     integer NOT NULL CHECK (quantity >= 1),
    unit_amount  bigint  NOT NULL CHECK (unit_amount >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- When an order was first seen paid. Kept apart from `orders` because it must move to an earlier time
-- even when the event carrying it is older than the snapshot already stored (out-of-order delivery).
CREATE TABLE order_confirmations (
    order_id     text        PRIMARY KEY REFERENCES orders (order_id) ON DELETE CASCADE,
    confirmed_at timestamptz NOT NULL
);

-- The monthly report scans confirmations by time, then reads each order's totals by its key.
CREATE INDEX order_confirmations_by_time ON order_confirmations (confirmed_at) INCLUDE (order_id);

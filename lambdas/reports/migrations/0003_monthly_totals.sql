-- Monthly totals kept up to date as orders arrive, so the monthly report reads a few rows per month instead
-- of every order confirmed in the period (docs/reports.md, "At scale").
--
-- 1. The confirmation time moves into `orders`: one row then holds everything an order's contribution to
--    the totals depends on, and the upsert changes it in one place under the row's lock.
ALTER TABLE orders ADD COLUMN confirmed_at timestamptz;

UPDATE orders o SET confirmed_at = c.confirmed_at FROM order_confirmations c WHERE c.order_id = o.order_id;

DROP TABLE order_confirmations;

-- 2. Totals per UTC month of confirmation, currency and status: what every confirmed order contributes, with
--    no rule about which statuses are revenue (the report applies that rule, reports.domain's, as a
--    parameter). Always equal to the same aggregate over `orders` (tests/sql/test_reports_totals.py).
CREATE TABLE order_month_totals (
    month        date    NOT NULL,
    currency     char(3) NOT NULL,
    status       text    NOT NULL,
    order_count  bigint  NOT NULL,
    net_amount   bigint  NOT NULL,
    tax_amount   bigint  NOT NULL,
    gross_amount bigint  NOT NULL,
    PRIMARY KEY (currency, month, status)
);

-- One order's contribution, signed: +1 for the row as it is now, -1 for the row as it was.
CREATE FUNCTION order_month_line(o orders, sign integer) RETURNS order_month_totals
LANGUAGE sql IMMUTABLE AS $$
    SELECT CAST(date_trunc('month', o.confirmed_at AT TIME ZONE 'UTC') AS date), o.currency, o.status,
           CAST(sign AS bigint), sign * o.net_amount, sign * o.tax_amount, sign * o.gross_amount
$$;

-- After every statement that changes orders: the rows it removed subtracted, the rows it wrote added.
-- The triggers see the rows exactly as the statement changed them (the latest version, under its lock),
-- so concurrent writers keep the totals exact. An upsert with ON CONFLICT fires both the INSERT and the
-- UPDATE trigger, each locking totals rows: writers take turns here (a transaction lock, held to
-- commit, taken once all their order rows are written), so two never wait on each other in a cycle.
CREATE FUNCTION order_month_totals_follow() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    lines order_month_totals[] := '{}';
BEGIN
    -- 7302: the totals' lock key (7301 serialises migrations, reports.schema).
    PERFORM pg_advisory_xact_lock(7302);
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        lines := lines || ARRAY(
            SELECT order_month_line(n, 1) FROM new_rows n WHERE n.confirmed_at IS NOT NULL
        );
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        lines := lines || ARRAY(
            SELECT order_month_line(o, -1) FROM old_rows o WHERE o.confirmed_at IS NOT NULL
        );
    END IF;
    INSERT INTO order_month_totals AS t
    SELECT month, currency, status, sum(order_count), sum(net_amount), sum(tax_amount), sum(gross_amount)
    FROM unnest(lines)
    GROUP BY currency, month, status
    ORDER BY currency, month, status
    ON CONFLICT (currency, month, status) DO UPDATE SET
        order_count = t.order_count + excluded.order_count,
        net_amount = t.net_amount + excluded.net_amount,
        tax_amount = t.tax_amount + excluded.tax_amount,
        gross_amount = t.gross_amount + excluded.gross_amount;
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_inserted_into_totals AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION order_month_totals_follow();
CREATE TRIGGER orders_updated_into_totals AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION order_month_totals_follow();
CREATE TRIGGER orders_deleted_from_totals AFTER DELETE ON orders
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION order_month_totals_follow();

CREATE FUNCTION order_month_totals_clear() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7302);
    DELETE FROM order_month_totals;
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_truncated_from_totals AFTER TRUNCATE ON orders
    FOR EACH STATEMENT EXECUTE FUNCTION order_month_totals_clear();

-- 3. The totals of the orders already stored.
INSERT INTO order_month_totals
SELECT month, currency, status, sum(order_count), sum(net_amount), sum(tax_amount), sum(gross_amount)
FROM (SELECT (order_month_line(o, 1)).* FROM orders o WHERE o.confirmed_at IS NOT NULL) AS line
GROUP BY currency, month, status;

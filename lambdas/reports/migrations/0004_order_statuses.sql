-- The order statuses of issue 17: a delayed payment (PAYMENT_PROCESSING), an intent canceled before it
-- was paid (PAYMENT_CANCELLED), and an order refunded in full from outside the store (REFUNDED).
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (
    status IN (
        'PENDING_PAYMENT', 'PAYMENT_PROCESSING', 'PAID', 'PAYMENT_FAILED', 'PAYMENT_CANCELLED',
        'FULFILLED', 'CANCELLED', 'REFUNDED'
    )
);

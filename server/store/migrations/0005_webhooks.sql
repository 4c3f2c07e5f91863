-- Webhooks: a company's receivers of new messages, and the durable queue
-- of deliveries to them.

CREATE TABLE webhooks (
    id uuid PRIMARY KEY,
    company_id uuid NOT NULL REFERENCES companies ON DELETE CASCADE,
    url text NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    -- Signs every delivery (HMAC-SHA256); kept as is, since signing needs it.
    secret text NOT NULL,
    created_by uuid REFERENCES users ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- False once deleted; kept so its delivery log stays readable.
    active boolean NOT NULL DEFAULT true
);
CREATE INDEX webhooks_company_idx ON webhooks (company_id) WHERE active;

CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id uuid NOT NULL REFERENCES webhooks ON DELETE CASCADE,
    message_id uuid NOT NULL REFERENCES messages ON DELETE CASCADE,
    -- 'pending': to be sent at next_attempt_at. 'delivered': the receiver
    -- answered 2xx. 'failed': refused for good or retried for too long.
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- What the last attempt got: an HTTP status, or an error in words.
    last_status integer,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    UNIQUE (webhook_id, message_id)
);
CREATE INDEX webhook_deliveries_due_idx
    ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log_idx
    ON webhook_deliveries (webhook_id, created_at DESC);

-- Every new message of a company queues one delivery per active webhook,
-- in the transaction that stores the message: a message is never stored
-- without its deliveries, nor delivered without being stored.
CREATE FUNCTION queue_webhook_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, message_id, next_attempt_at)
    SELECT w.id, NEW.id, NEW.created_at
    FROM webhooks w
    WHERE w.company_id = NEW.company_id AND w.active;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_queue_webhooks
    AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION queue_webhook_deliveries();

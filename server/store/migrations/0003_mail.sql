-- Email for people who are away: their settings, the messages waiting to
-- be mailed to them, and the emails made from those messages.

ALTER TABLE users
    -- False after the person turns email off, in settings or with the
    -- one-click unsubscribe link of an email.
    ADD COLUMN email_notifications boolean NOT NULL DEFAULT true,
    -- How long an unread message waits before it is mailed; NULL follows
    -- the server's EMAIL_DELAY_SECS.
    ADD COLUMN email_delay_secs integer
        CHECK (email_delay_secs BETWEEN 0 AND 3600),
    -- Times in emails read "15:30" rather than "3:30 PM".
    ADD COLUMN clock_24h boolean NOT NULL DEFAULT false;

-- One email: a recipient and a company, with the Message-ID every attempt
-- to send it carries. The row commits before the first attempt, so a
-- worker that dies while sending leaves it here to be sent again, as the
-- same mail.
CREATE TABLE mail_batches (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    company_id uuid NOT NULL REFERENCES companies ON DELETE CASCADE,
    -- "<id@public host>", the same on every attempt.
    message_id text NOT NULL UNIQUE,
    -- 'ready': to be sent at next_attempt_at. 'sent': the SMTP server took
    -- it. 'failed': refused for good, or retried for too long. 'dropped':
    -- nothing was left to say when its turn came (all read, say).
    state text NOT NULL DEFAULT 'ready'
        CHECK (state IN ('ready', 'sent', 'failed', 'dropped')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    -- When it left the 'ready' state; NULL while ready.
    finished_at timestamptz,
    -- Why the last attempt failed, for operators; NULL when none did.
    last_error text
);
CREATE INDEX mail_batches_ready_idx
    ON mail_batches (next_attempt_at) WHERE state = 'ready';
CREATE INDEX mail_batches_user_idx ON mail_batches (user_id, created_at);

-- One row per message and recipient who may have to be mailed about it,
-- written in the transaction that stores the message.
CREATE TABLE mail_outbox (
    message_id uuid NOT NULL REFERENCES messages ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    -- Copied from the message (it never changes): emails are per company.
    company_id uuid NOT NULL REFERENCES companies ON DELETE CASCADE,
    -- The message's time plus the recipient's delay; later when the
    -- recipient's hourly allowance of emails is used up.
    due_at timestamptz NOT NULL,
    -- 'pending' until a worker looks at it; 'batched' once it is in an
    -- email; 'skipped' when it will not be mailed (skip_reason says why).
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'batched', 'skipped')),
    batch_id uuid REFERENCES mail_batches ON DELETE CASCADE,
    -- 'read', 'not_member', 'attentive' or 'email_off'; NULL unless skipped.
    skip_reason text,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (due_at) WHERE state = 'pending';
CREATE INDEX mail_outbox_user_idx ON mail_outbox (user_id) WHERE state = 'pending';
CREATE INDEX mail_outbox_batch_idx ON mail_outbox (batch_id);

-- Companies, people, their memberships, the transactions they talk about,
-- one conversation per transaction, its messages and each reader's place.

CREATE TABLE companies (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Last number given out in the company's stream of messages; every
    -- message takes the next one while this row is locked, so the numbers
    -- commit in order and a reader never sees a later one before an
    -- earlier one.
    last_message_seq bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    -- 'bot' accounts act through API tokens and cannot sign in.
    kind text NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'bot')),
    -- argon2id hash; NULL means no password sign-in.
    password_hash text,
    -- IANA zone name; NULL means the person has not chosen one (shown as UTC).
    time_zone text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE memberships (
    company_id uuid NOT NULL REFERENCES companies ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('accountant', 'client')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE transactions (
    id uuid PRIMARY KEY,
    company_id uuid NOT NULL REFERENCES companies ON DELETE CASCADE,
    -- The accounting system's own id; upserts match on it.
    external_id text,
    type text NOT NULL,
    doc_number text NOT NULL DEFAULT '',
    txn_date date NOT NULL,
    counterparty text NOT NULL DEFAULT '',
    memo text NOT NULL DEFAULT '',
    amount numeric(18, 2) NOT NULL,
    currency char(3) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, external_id)
);
CREATE INDEX transactions_company_date_idx
    ON transactions (company_id, txn_date DESC, id);

CREATE TABLE conversations (
    id uuid PRIMARY KEY,
    transaction_id uuid NOT NULL UNIQUE REFERENCES transactions ON DELETE CASCADE,
    company_id uuid NOT NULL REFERENCES companies ON DELETE CASCADE,
    -- Sequence number of the newest message; the next one takes +1 under
    -- this row's lock, which is what keeps the numbers free of gaps.
    last_seq bigint NOT NULL DEFAULT 0,
    last_message_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_company_idx ON conversations (company_id);

CREATE TABLE messages (
    id uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations ON DELETE CASCADE,
    -- Copied from the conversation (they never change) so that company
    -- streams and inboxes need no join to name the transaction.
    transaction_id uuid NOT NULL REFERENCES transactions ON DELETE CASCADE,
    company_id uuid NOT NULL REFERENCES companies ON DELETE CASCADE,
    seq bigint NOT NULL CHECK (seq > 0),
    company_seq bigint NOT NULL CHECK (company_seq > 0),
    -- 'system' entries are written by Tickmark itself and have no author.
    kind text NOT NULL DEFAULT 'message' CHECK (kind IN ('message', 'system')),
    author_id uuid REFERENCES users,
    -- The author's role in the company when the message was posted.
    author_role text,
    body text NOT NULL,
    created_at timestamptz NOT NULL,
    idempotency_key text,
    UNIQUE (conversation_id, seq),
    UNIQUE (company_id, company_seq),
    UNIQUE (author_id, idempotency_key),
    CHECK ((kind = 'system') = (author_id IS NULL))
);

-- One row per message and recipient. The conversation, company and seq are
-- copied from the message (they never change) so that unread counts are one
-- index range per conversation.
CREATE TABLE message_recipients (
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    conversation_id uuid NOT NULL REFERENCES conversations ON DELETE CASCADE,
    seq bigint NOT NULL,
    message_id uuid NOT NULL REFERENCES messages ON DELETE CASCADE,
    company_id uuid NOT NULL REFERENCES companies ON DELETE CASCADE,
    PRIMARY KEY (user_id, conversation_id, seq)
);
CREATE INDEX message_recipients_message_idx ON message_recipients (message_id);
CREATE INDEX message_recipients_company_idx
    ON message_recipients (user_id, company_id, conversation_id, seq);

CREATE TABLE read_states (
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    conversation_id uuid NOT NULL REFERENCES conversations ON DELETE CASCADE,
    -- Highest seq the user has read; only ever moves forward.
    last_read_seq bigint NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, conversation_id)
);

-- Browser sessions and bearer tokens alike: only a hash of the secret is
-- kept, so a copy of this table signs nobody in.
CREATE TABLE credentials (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('session', 'token')),
    secret_hash bytea NOT NULL UNIQUE,
    name text NOT NULL DEFAULT '',
    -- What the holder may do: read, post, subscribe, write_transactions.
    scopes text[] NOT NULL,
    -- Companies the credential is limited to; NULL means all of the user's.
    company_ids uuid[],
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    -- NULL: never expires on its own (API tokens until revoked).
    expires_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX credentials_user_idx ON credentials (user_id);

CREATE TABLE sign_in_failures (
    -- 'account:<lowercased email>' or 'address:<client address>'.
    key text NOT NULL,
    failed_at timestamptz NOT NULL
);
CREATE INDEX sign_in_failures_key_idx ON sign_in_failures (key, failed_at);

-- A post is stored by one statement, which also writes its email intents
-- and answers with the stored message as readers see it.
--
-- Until now a post took a transaction of its own: begin, the append, a
-- second query reading the message back with its names, a third writing
-- the email intents, commit. Each is a round trip to PostgreSQL, and the
-- process's time went mostly to sending and receiving them. One statement
-- is atomic without begin and commit, and the pipelined calls of a batch
-- share the implicit transaction their single sync gives them.
--
-- message_rows is the shape in which messages leave the database: every
-- column of the message, the author's name, and the recipients as
-- (id, name) pairs sorted by name. Readers select from it, and so does
-- append_message for its answer, so the two cannot drift apart.
--
-- Holding the company's lock, no other post of the company is being
-- stored, so the idempotency key is checked once, before anything is
-- written (0009 checked it on two paths). The same author reusing a key
-- in another company at the same moment is the unique constraint's to
-- catch: the later of the two fails, and its caller answers from what the
-- first stored.

CREATE VIEW message_rows AS
SELECT m.id, m.conversation_id, m.transaction_id, m.company_id, m.seq,
    m.company_seq, m.kind, m.author_id, u.display_name AS author_name,
    m.author_role, m.body, m.created_at, m.idempotency_key,
    array(
        SELECT ARRAY[r.user_id::text, ru.display_name]
        FROM message_recipients r JOIN users ru ON ru.id = r.user_id
        WHERE r.message_id = m.id
        ORDER BY lower(ru.display_name), r.user_id
    ) AS recipients
FROM messages m LEFT JOIN users u ON u.id = m.author_id;

DROP FUNCTION append_message(uuid, uuid, uuid, text, text, uuid[], text, timestamptz);

-- p_mail_delay_secs: the delay of recipients who chose none; NULL writes
-- no email intents (system entries, demo data).
CREATE FUNCTION append_message(
    p_transaction uuid,
    p_company uuid,
    p_author uuid,
    p_author_role text,
    p_body text,
    p_recipients uuid[],
    p_key text,
    p_created_at timestamptz,
    p_mail_delay_secs integer
) RETURNS TABLE (
    created boolean,
    id uuid,
    conversation_id uuid,
    transaction_id uuid,
    company_id uuid,
    seq bigint,
    company_seq bigint,
    kind text,
    author_id uuid,
    author_name text,
    author_role text,
    body text,
    created_at timestamptz,
    idempotency_key text,
    recipients text[]
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_conversation uuid;
    v_existing uuid;
    v_seq bigint;
    v_company_seq bigint;
    v_message uuid := gen_random_uuid();
BEGIN
    PERFORM 1 FROM companies c WHERE c.id = p_company FOR UPDATE;

    -- A key already used answers with what it stored (the caller compares
    -- it with the post and refuses a different message), and stores
    -- nothing: not even the conversation.
    IF p_author IS NOT NULL AND p_key IS NOT NULL THEN
        SELECT m.id INTO v_existing FROM messages m
        WHERE m.author_id = p_author AND m.idempotency_key = p_key;
        IF FOUND THEN
            RETURN QUERY SELECT false, r.* FROM message_rows r WHERE r.id = v_existing;
            RETURN;
        END IF;
    END IF;

    SELECT c.id INTO v_conversation
    FROM conversations c WHERE c.transaction_id = p_transaction FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO conversations (id, transaction_id, company_id)
        VALUES (gen_random_uuid(), p_transaction, p_company)
        ON CONFLICT (transaction_id) DO NOTHING;
        SELECT c.id INTO v_conversation
        FROM conversations c WHERE c.transaction_id = p_transaction FOR UPDATE;
    END IF;

    UPDATE conversations c
    SET last_seq = c.last_seq + 1, last_message_at = p_created_at
    WHERE c.id = v_conversation RETURNING c.last_seq INTO v_seq;
    UPDATE companies c SET last_message_seq = c.last_message_seq + 1
    WHERE c.id = p_company RETURNING c.last_message_seq INTO v_company_seq;

    INSERT INTO messages (
        id, conversation_id, transaction_id, company_id, seq, company_seq,
        kind, author_id, author_role, body, created_at, idempotency_key
    ) VALUES (
        v_message, v_conversation, p_transaction, p_company, v_seq,
        v_company_seq, CASE WHEN p_author IS NULL THEN 'system' ELSE 'message' END,
        p_author, p_author_role, p_body, p_created_at, p_key
    );
    INSERT INTO message_recipients (user_id, conversation_id, seq, message_id, company_id)
    SELECT r, v_conversation, v_seq, v_message, p_company
    FROM unnest(p_recipients) AS r;
    -- A new message lies past every read marker (markers stop at the
    -- newest message, and this one is newer), so it is unread for each
    -- recipient.
    INSERT INTO unread_counts AS u (user_id, conversation_id, company_id, unread)
    SELECT r, v_conversation, p_company, 1 FROM unnest(p_recipients) AS r
    ON CONFLICT (user_id, conversation_id) DO UPDATE SET unread = u.unread + 1;

    -- The intent to mail each recipient who may get email (people with
    -- email turned on), due after their own delay or the default.
    IF p_mail_delay_secs IS NOT NULL THEN
        INSERT INTO mail_outbox (message_id, user_id, company_id, due_at)
        SELECT v_message, u.id, p_company,
            p_created_at + make_interval(
                secs => coalesce(u.email_delay_secs, p_mail_delay_secs))
        FROM users u
        WHERE u.id = ANY(p_recipients) AND u.kind = 'person' AND u.email_notifications;
    END IF;

    RETURN QUERY SELECT true, r.* FROM message_rows r WHERE r.id = v_message;
END
$$;

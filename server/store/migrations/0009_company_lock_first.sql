-- Posts take the company's row lock before the conversation's.
--
-- Several posts may now be stored in one database transaction (the
-- process gathers those that arrive together, to share a commit), and such
-- a transaction holds every lock it took until it commits. Locks taken
-- one post at a time in the order (company, conversation), with the posts
-- sorted the same way, can never wait on each other in a circle; the
-- order (conversation, company) of the 0008 version could, against a post
-- stored alone.
--
-- A post whose idempotency key was already used, on a transaction with no
-- conversation yet, no longer makes one: such a post is answered from
-- what the key stored (or refused), and stores nothing.

CREATE OR REPLACE FUNCTION append_message(
    p_transaction uuid,
    p_company uuid,
    p_author uuid,
    p_author_role text,
    p_body text,
    p_recipients uuid[],
    p_key text,
    p_created_at timestamptz
) RETURNS TABLE (message_id uuid, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_conversation uuid;
    v_existing uuid;
    v_seq bigint;
    v_company_seq bigint;
    v_message uuid := gen_random_uuid();
BEGIN
    PERFORM 1 FROM companies WHERE id = p_company FOR UPDATE;

    SELECT c.id INTO v_conversation
    FROM conversations c WHERE c.transaction_id = p_transaction FOR UPDATE;
    IF NOT FOUND THEN
        -- A key already used answers from what it stored, without making
        -- an empty conversation for a message that will not be stored
        -- (a different message reusing the key is refused).
        IF p_author IS NOT NULL AND p_key IS NOT NULL THEN
            SELECT m.id INTO v_existing FROM messages m
            WHERE m.author_id = p_author AND m.idempotency_key = p_key;
            IF FOUND THEN
                RETURN QUERY SELECT v_existing, false;
                RETURN;
            END IF;
        END IF;
        INSERT INTO conversations (id, transaction_id, company_id)
        VALUES (gen_random_uuid(), p_transaction, p_company)
        ON CONFLICT (transaction_id) DO NOTHING;
        SELECT c.id INTO v_conversation
        FROM conversations c WHERE c.transaction_id = p_transaction FOR UPDATE;
    END IF;

    IF p_author IS NOT NULL AND p_key IS NOT NULL THEN
        SELECT m.id INTO v_existing FROM messages m
        WHERE m.author_id = p_author AND m.idempotency_key = p_key;
        IF FOUND THEN
            RETURN QUERY SELECT v_existing, false;
            RETURN;
        END IF;
    END IF;

    UPDATE conversations SET last_seq = last_seq + 1, last_message_at = p_created_at
    WHERE id = v_conversation RETURNING last_seq INTO v_seq;
    UPDATE companies SET last_message_seq = last_message_seq + 1
    WHERE id = p_company RETURNING last_message_seq INTO v_company_seq;

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

    RETURN QUERY SELECT v_message, true;
END
$$;

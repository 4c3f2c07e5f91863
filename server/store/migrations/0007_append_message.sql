-- Appending a message in one round trip.
--
-- Posting is the hot path of the product: done statement by statement, it
-- took a dozen round trips to PostgreSQL. This function does the same
-- steps, in the same order and under the same locks, in one call:
--
-- 1. find or make the transaction's conversation, and lock its row, so
--    posts to one conversation take their numbers one after another;
-- 2. return the author's earlier message with the same idempotency key, if
--    there is one (a retry racing its original finds it here, since the
--    original held the lock until it committed);
-- 3. take the next seq from the conversation and the next company_seq
--    from the company (always in this order, so two posts cannot
--    deadlock), insert the message and one row per recipient.

CREATE FUNCTION append_message(
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
    SELECT c.id INTO v_conversation
    FROM conversations c WHERE c.transaction_id = p_transaction FOR UPDATE;
    IF NOT FOUND THEN
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

    RETURN QUERY SELECT v_message, true;
END
$$;

-- Unread counts kept per reader and conversation, so that badges are a
-- small sum instead of a count over every message ever addressed.
--
-- The count is only ever changed where its source changes, in the same
-- transaction and under the conversation's row lock: append_message adds
-- one for each recipient, and advance_read recounts the reader's messages
-- past their new marker. Memberships are not folded in: badges join the
-- current memberships, so a company someone left counts for nothing.

CREATE TABLE unread_counts (
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    conversation_id uuid NOT NULL REFERENCES conversations ON DELETE CASCADE,
    company_id uuid NOT NULL REFERENCES companies ON DELETE CASCADE,
    unread integer NOT NULL CHECK (unread >= 0),
    PRIMARY KEY (user_id, conversation_id)
);
CREATE INDEX unread_counts_user_company_idx ON unread_counts (user_id, company_id);

INSERT INTO unread_counts (user_id, conversation_id, company_id, unread)
SELECT r.user_id, r.conversation_id, r.company_id,
    count(*) FILTER (WHERE r.seq > coalesce(rs.last_read_seq, 0))
FROM message_recipients r
LEFT JOIN read_states rs
    ON rs.user_id = r.user_id AND rs.conversation_id = r.conversation_id
GROUP BY r.user_id, r.conversation_id, r.company_id;

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
    -- A new message lies past every read marker (markers stop at the
    -- newest message, and this one is newer), so it is unread for each
    -- recipient.
    INSERT INTO unread_counts AS u (user_id, conversation_id, company_id, unread)
    SELECT r, v_conversation, p_company, 1 FROM unnest(p_recipients) AS r
    ON CONFLICT (user_id, conversation_id) DO UPDATE SET unread = u.unread + 1;

    RETURN QUERY SELECT v_message, true;
END
$$;


-- Move a reader's marker forward (never back, never past the newest
-- message) and recount what is left unread for them, in one round trip.
-- The conversation's row is locked for share first, so no post is half
-- done while we count: posts hold it for update until they commit.
CREATE FUNCTION advance_read(p_user uuid, p_conversation uuid, p_seq bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_last_seq bigint;
    v_marker bigint;
BEGIN
    SELECT last_seq INTO v_last_seq FROM conversations
    WHERE id = p_conversation FOR SHARE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    INSERT INTO read_states AS rs (user_id, conversation_id, last_read_seq)
    VALUES (p_user, p_conversation, least(p_seq, v_last_seq))
    ON CONFLICT (user_id, conversation_id) DO UPDATE
        SET last_read_seq = greatest(rs.last_read_seq, excluded.last_read_seq),
            updated_at = now()
    RETURNING last_read_seq INTO v_marker;
    UPDATE unread_counts SET unread = (
        SELECT count(*) FROM message_recipients r
        WHERE r.user_id = p_user AND r.conversation_id = p_conversation
          AND r.seq > v_marker
    )
    WHERE user_id = p_user AND conversation_id = p_conversation;
    RETURN v_marker;
END
$$;

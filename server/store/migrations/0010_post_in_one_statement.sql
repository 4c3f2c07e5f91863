-- A post is one statement: it reads the facts the rules are judged on,
-- stores the message only if they allow it, writes its email intents, and
-- answers with the facts and the stored message as readers see it.
--
-- Until now a post took a transaction of its own: begin, a query for the
-- facts, the append, a query reading the message back with its names, one
-- writing the email intents, commit. Each is a round trip to PostgreSQL,
-- and the process's time went mostly to sending and receiving them. One
-- statement is atomic without begin and commit, and the pipelined calls
-- of a batch share the implicit transaction their single sync gives them.
--
-- The rules stay in the application: it judges the facts this function
-- returns, and names the error. The function only refuses to store what
-- the rules would refuse, given what it is told: the transaction types
-- that take a conversation (none, when the caller may not post at all).
-- The facts are read while the company's lock is held, and removing a
-- member takes that lock too (server/store/companies.py): a post is
-- stored either before a removal commits or after it, judged by what it
-- left. Read ahead, as before, an author or recipient removed while the
-- post waited could still be stored.
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
        SELECT ARRAY[p.user_id::text, p.name]
        FROM (
            -- Each name looked up by id. As a join, the planner may hash
            -- every user to name one recipient: it did so while the
            -- statistics still guessed a hundred recipients per message.
            SELECT r.user_id,
                (SELECT ru.display_name FROM users ru WHERE ru.id = r.user_id) AS name
            FROM message_recipients r
            WHERE r.message_id = m.id
        ) AS p
        ORDER BY lower(p.name), p.user_id
    ) AS recipients
FROM messages m LEFT JOIN users u ON u.id = m.author_id;

DROP FUNCTION append_message(uuid, uuid, uuid, text, text, uuid[], text, timestamptz);

-- p_author_role: NULL for a person's post, which takes their role in the
-- company; 'bot' for a bot's.
-- p_mail_delay_secs: the delay of recipients who chose none; NULL writes
-- no email intents (system entries, demo data).
-- p_conversation_types: NULL appends without any check (system entries,
-- whose callers have checked); otherwise the message is stored only when
-- the author is a member of the company, the transaction is the
-- company's and of one of these types, and every recipient is a member.
--
-- Always one row. created: whether this call stored the message. role,
-- type, members: the facts, for a checked post (members is NULL when the
-- checks stopped before the lock). The message's columns: the stored
-- message; or the one the author's idempotency key already names; or
-- NULL when neither.
CREATE FUNCTION append_message(
    p_transaction uuid,
    p_company uuid,
    p_author uuid,
    p_author_role text,
    p_body text,
    p_recipients uuid[],
    p_key text,
    p_created_at timestamptz,
    p_mail_delay_secs integer,
    p_conversation_types text[]
) RETURNS TABLE (
    created boolean,
    role text,
    type text,
    members bigint,
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
    v_role text;
    v_type text;
    v_members bigint;
    v_conversation uuid;
    v_existing uuid;
    v_seq bigint;
    v_company_seq bigint;
    v_message uuid := gen_random_uuid();
BEGIN
    IF p_conversation_types IS NOT NULL THEN
        -- Read before any lock is taken: a post that names another
        -- company's ids locks nothing of that company.
        SELECT m.role INTO v_role FROM memberships m
        WHERE m.company_id = p_company AND m.user_id = p_author;
        SELECT t.type INTO v_type FROM transactions t
        WHERE t.id = p_transaction AND t.company_id = p_company;
        IF v_role IS NULL OR v_type IS NULL
                OR NOT (v_type = ANY(p_conversation_types)) THEN
            -- Refused. A retry of a post that was stored is still
            -- answered with it: the caller sees what the key names.
            RETURN QUERY SELECT false, v_role, v_type, NULL::bigint, r.*
            FROM (SELECT) AS one
            LEFT JOIN message_rows r
                ON r.author_id = p_author AND r.idempotency_key = p_key;
            RETURN;
        END IF;
    END IF;

    PERFORM 1 FROM companies c WHERE c.id = p_company FOR UPDATE;

    IF p_conversation_types IS NOT NULL THEN
        -- Read again under the lock: what was read above may have changed
        -- while the post waited for it.
        SELECT m.role INTO v_role FROM memberships m
        WHERE m.company_id = p_company AND m.user_id = p_author;
        SELECT t.type INTO v_type FROM transactions t
        WHERE t.id = p_transaction AND t.company_id = p_company;
        SELECT count(*) INTO v_members FROM memberships m
        WHERE m.company_id = p_company AND m.user_id = ANY(p_recipients);
    END IF;

    -- A key already used answers with what it stored (the caller compares
    -- it with the post and refuses a different message), and stores
    -- nothing: not even the conversation.
    IF p_author IS NOT NULL AND p_key IS NOT NULL THEN
        SELECT m.id INTO v_existing FROM messages m
        WHERE m.author_id = p_author AND m.idempotency_key = p_key;
        IF FOUND THEN
            RETURN QUERY SELECT false, v_role, v_type, v_members, r.*
            FROM message_rows r WHERE r.id = v_existing;
            RETURN;
        END IF;
    END IF;

    IF p_conversation_types IS NOT NULL AND (
            v_role IS NULL OR v_type IS NULL
            OR NOT (v_type = ANY(p_conversation_types))
            OR v_members IS DISTINCT FROM cardinality(p_recipients)) THEN
        RETURN QUERY SELECT false, v_role, v_type, v_members, r.*
        FROM (SELECT) AS one LEFT JOIN message_rows r ON false;
        RETURN;
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
        p_author, coalesce(p_author_role, v_role), p_body, p_created_at, p_key
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

    RETURN QUERY SELECT true, v_role, v_type, v_members, r.*
    FROM message_rows r WHERE r.id = v_message;
END
$$;

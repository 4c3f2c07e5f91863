-- What the live layer shares between server processes: who is connected
-- and paying attention, and which changes may take access away.

CREATE TABLE presence (
    connection_id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    -- The server process holding the connection.
    node text NOT NULL,
    connected_at timestamptz NOT NULL,
    -- The person counts as attentive on this connection until then; an
    -- open but hidden or idle tab has it in the past.
    active_until timestamptz NOT NULL,
    -- Refreshed while the connection is open. A row not refreshed for a
    -- while belongs to a process that died, and counts for nothing.
    seen_at timestamptz NOT NULL,
    -- Transactions the connection has open (subscribed to).
    viewing uuid[] NOT NULL DEFAULT '{}'
);
CREATE INDEX presence_user_idx ON presence (user_id);
CREATE INDEX presence_viewing_idx ON presence USING gin (viewing);

-- One row per change that may take access away from open connections: a
-- membership ended or changed, a credential revoked. Every server process
-- reads the recent rows each second and re-checks the connections of the
-- users named, whichever process or command made the change.
CREATE TABLE access_changes (
    id bigserial PRIMARY KEY,
    user_id uuid NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX access_changes_at_idx ON access_changes (changed_at);

CREATE FUNCTION note_access_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO access_changes (user_id) VALUES (OLD.user_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER memberships_access_change
    AFTER DELETE OR UPDATE ON memberships
    FOR EACH ROW EXECUTE FUNCTION note_access_change();

CREATE TRIGGER credentials_access_change
    AFTER UPDATE OF revoked_at ON credentials
    FOR EACH ROW WHEN (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at)
    EXECUTE FUNCTION note_access_change();

-- What an accountant delegates lives by their standing: when they leave a
-- company (or stop being its accountant), the bots they made leave it too
-- and the webhooks they registered stop. And a token made by another
-- token is its child: revoking the parent revokes it.

CREATE FUNCTION drop_delegated_access() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.role = 'accountant'
       AND (TG_OP = 'DELETE' OR NEW.role <> 'accountant') THEN
        DELETE FROM memberships m
        USING users b
        WHERE m.company_id = OLD.company_id
          AND m.user_id = b.id
          AND b.owner_id = OLD.user_id;
        UPDATE webhook_deliveries d
        SET state = 'failed', last_error = 'webhook stopped: its maker left'
        FROM webhooks w
        WHERE d.webhook_id = w.id AND d.state = 'pending'
          AND w.company_id = OLD.company_id AND w.created_by = OLD.user_id
          AND w.active;
        UPDATE webhooks SET active = false
        WHERE company_id = OLD.company_id AND created_by = OLD.user_id AND active;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER memberships_drop_delegated
    AFTER DELETE OR UPDATE OF role ON memberships
    FOR EACH ROW EXECUTE FUNCTION drop_delegated_access();

ALTER TABLE credentials
    -- The token that made this one, if a token did; NULL for sessions,
    -- sign-in tokens and tokens made from a browser or the command line.
    ADD COLUMN parent_id uuid REFERENCES credentials ON DELETE CASCADE;
CREATE INDEX credentials_parent_idx ON credentials (parent_id)
    WHERE parent_id IS NOT NULL;

-- Each revocation fires the trigger again on the children, so a whole
-- family of tokens goes down together.
CREATE FUNCTION revoke_child_credentials() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE credentials SET revoked_at = NEW.revoked_at
    WHERE parent_id = NEW.id AND revoked_at IS NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER credentials_revoke_children
    AFTER UPDATE OF revoked_at ON credentials
    FOR EACH ROW
    WHEN (NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL)
    EXECUTE FUNCTION revoke_child_credentials();

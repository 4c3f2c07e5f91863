-- Bot accounts belong to the person who made them, and join companies in a
-- role of their own, so their messages show "bot" as the author's role.

ALTER TABLE users
    -- For bots: the person who made the bot and manages its tokens (NULL
    -- for bots an operator made with the command line). A bot goes when its
    -- maker's account goes.
    ADD COLUMN owner_id uuid REFERENCES users ON DELETE CASCADE,
    ADD CONSTRAINT users_only_bots_have_owners
        CHECK (owner_id IS NULL OR kind = 'bot');

ALTER TABLE memberships DROP CONSTRAINT memberships_role_check;
ALTER TABLE memberships
    ADD CONSTRAINT memberships_role_check
        CHECK (role IN ('accountant', 'client', 'bot'));

CREATE INDEX users_owner_idx ON users (owner_id) WHERE owner_id IS NOT NULL;
CREATE INDEX credentials_user_kind_idx ON credentials (user_id, kind)
    WHERE revoked_at IS NULL;

-- The example resource: items owned by the token's subject. Replace with your own tables;
-- add new files (0002_....sql) rather than editing applied ones.
CREATE TABLE IF NOT EXISTS items (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner      text NOT NULL,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS items_owner_idx ON items (owner, id);

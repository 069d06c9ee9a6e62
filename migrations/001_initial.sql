-- eodh-credd schema, version 1.
-- Secret columns (sealed_*) hold AES-256-GCM envelopes "v1:<key id>:<nonce>:<ciphertext+tag>"
-- whose additional data binds table, column and row id: a value copied to another row fails to open.

CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

CREATE TABLE workspaces (
  id                TEXT PRIMARY KEY,             -- random UUID, part of every sealed value's AAD
  name              TEXT NOT NULL UNIQUE,
  hub_url           TEXT NOT NULL,
  region            TEXT NOT NULL,
  client_token_id   TEXT NOT NULL UNIQUE,         -- public handle for audit lines
  client_token_hash BLOB NOT NULL,                -- SHA-256 of the client token
  file_sink         TEXT,                         -- path of an AWS shared-credentials file to keep updated, or NULL
  created_at        INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
  id           TEXT PRIMARY KEY,
  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  state        TEXT NOT NULL CHECK (state IN ('active', 'pending', 'retiring')),
  token_id     TEXT,                              -- the hub's id; NULL when unknown
  name         TEXT,                              -- the name we minted it under
  sealed_key   TEXT NOT NULL,
  expires_at   INTEGER,                           -- epoch ms; NULL when unknown
  stored_at    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX api_keys_one_active ON api_keys(workspace_id) WHERE state = 'active';
CREATE UNIQUE INDEX api_keys_one_pending ON api_keys(workspace_id) WHERE state = 'pending';

CREATE TABLE s3_credentials (
  workspace_id         TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
  access_key_id        TEXT NOT NULL,
  sealed_secret        TEXT NOT NULL,
  sealed_session_token TEXT NOT NULL,
  account_id           TEXT,
  issued_at            INTEGER NOT NULL,
  expires_at           INTEGER NOT NULL
) STRICT;

CREATE TABLE workspace_status (
  workspace_id       TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
  last_renewal_at    INTEGER,
  last_error_code    TEXT,
  last_error_message TEXT,
  last_error_at      INTEGER,
  failures           INTEGER NOT NULL DEFAULT 0,
  rotation_state     TEXT NOT NULL DEFAULT 'ok' CHECK (rotation_state IN ('ok', 'needs_user')),
  rotation_note      TEXT
) STRICT;

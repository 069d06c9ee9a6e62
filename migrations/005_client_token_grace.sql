-- eodh-credd schema, version 5: after `client-token rotate`, the previous client token keeps
-- working until previous_client_token_until (ms since the epoch), so processes that were given
-- the token by value (AWS_CONTAINER_AUTHORIZATION_TOKEN) keep working through a short grace
-- period (#15). A rotation with no grace leaves these NULL.
ALTER TABLE workspaces ADD COLUMN previous_client_token_id TEXT;
ALTER TABLE workspaces ADD COLUMN previous_client_token_hash BLOB;
ALTER TABLE workspaces ADD COLUMN previous_client_token_until INTEGER;

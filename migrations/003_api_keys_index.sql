-- eodh-credd schema, version 3: every key lookup is by workspace (in storage order); without this
-- index each one scanned the whole table, so loading many workspaces grew quadratically.
CREATE INDEX api_keys_by_workspace ON api_keys(workspace_id, stored_at);

-- eodh-credd schema, version 4: what the hub allows and says about each workspace (#11).
-- capabilities: JSON {"list"|"mint"|"delete": {"state": "allowed"|"refused", "status"?: n, "at": ms}},
--   learned from the hub's answers to this workspace's key; a missing entry is "not yet known".
-- failing_since: the first failure of the current run of failed renewals (cleared by a renewal),
--   so status can say when the hub has failed for this workspace for a day.
ALTER TABLE workspace_status ADD COLUMN capabilities TEXT NOT NULL DEFAULT '{}';
ALTER TABLE workspace_status ADD COLUMN failing_since INTEGER;
-- The workspace's object store as GET /api/workspaces/{ws} describes it (best effort; NULL = unknown).
ALTER TABLE workspaces ADD COLUMN s3_bucket TEXT;
ALTER TABLE workspaces ADD COLUMN s3_prefix TEXT;
-- api_keys.name is set only on keys this installation minted; a key the user pasted has none and
-- is never revoked unless the user asked, which `revoke` records (1 = revoke when replaced).
ALTER TABLE api_keys ADD COLUMN revoke_when_replaced INTEGER NOT NULL DEFAULT 0;

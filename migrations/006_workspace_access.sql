-- eodh-credd schema, version 6: who besides the daemon's own user may read a workspace over TCP
-- (#12), for the system service on a machine shared by several users. Each row lets a user (uid)
-- or every member of a group (gid; its members are resolved from /etc/group and /etc/passwd when
-- the daemon checks) fetch the workspace's credentials and API key with its client token.
-- name is the account name as given (or found) when the grant was made, for display only: the
-- daemon matches ids. The rows go with the workspace.
CREATE TABLE workspace_access (
  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  kind         TEXT NOT NULL CHECK (kind IN ('user', 'group')),
  unix_id      INTEGER NOT NULL CHECK (unix_id >= 0),
  name         TEXT,
  granted_at   INTEGER NOT NULL,
  PRIMARY KEY (workspace_id, kind, unix_id)
) STRICT;

-- eodh-credd schema, version 2: crash-safe API-key rotation.
-- minting_since is set, in its own commit, just before asking the hub for a new key and cleared in
-- the same transaction that stores the key: if it is set at start-up, a key may have been minted
-- and lost, so orphans (our name prefix, an id we do not hold) are looked for and revoked.
ALTER TABLE workspace_status ADD COLUMN minting_since INTEGER;

-- Names of minted keys carry this id, so one installation never revokes another's keys.
INSERT INTO meta (key, value) VALUES ('install_id', lower(hex(randomblob(4))));

/**
 * The repositories: the only SQL in eodh-credd. Secrets go in sealed and come out opened; callers
 * never see an envelope. Statements are prepared once.
 */
import { randomUUID } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import type { DataPaths } from '../config/paths.js';
import type { Grant, GrantKind } from '../core/access.js';
import { type Capabilities, type Capability, type CapabilityFact, parseCapabilities } from '../core/hub-facts.js';
import type { ApiKey, Clock, S3Credentials } from '../core/types.js';
import { backupDatabase, takeRotatingBackup } from './backup.js';
import { guardStorage } from './errors.js';
import { Query } from './query.js';
import { cellAad, open, type SealingKey, seal } from './seal.js';

export type ApiKeyState = 'active' | 'pending' | 'retiring';
export type RotationState = 'ok' | 'needs_user';

export interface WorkspaceRecord {
  readonly id: string;
  readonly name: string;
  readonly hubUrl: string;
  readonly region: string;
  readonly clientTokenId: string;
  readonly clientTokenHash: Buffer;
  readonly fileSink: string | null;
  readonly createdAt: number;
  /** The workspace's bucket and prefix as the hub describes them; null when not known. */
  readonly s3Bucket: string | null;
  readonly s3Prefix: string | null;
  /** The client token replaced by the last rotation, still accepted until `until` (#15). */
  readonly previousClientToken?: PreviousClientToken | null;
}

export interface PreviousClientToken {
  readonly id: string;
  readonly hash: Buffer;
  /** Milliseconds since the epoch. */
  readonly until: number;
}

export interface StoredApiKey extends ApiKey {
  readonly id: string;
  readonly workspaceId: string;
  readonly state: ApiKeyState;
  /** Set only on keys this installation minted (the name they carry on the hub). */
  readonly name: string | null;
  readonly storedAt: number;
  /** A pasted key the user asked us to revoke once our own key replaces it. */
  readonly revokeWhenReplaced: boolean;
}

/** Keys this installation minted are ours to revoke; a pasted key only when the user asked. */
export function isOursToRevoke(key: Pick<StoredApiKey, 'name' | 'revokeWhenReplaced'>): boolean {
  return key.name !== null || key.revokeWhenReplaced;
}

export interface WorkspaceStatus {
  readonly lastRenewalAt: number | null;
  readonly lastErrorCode: string | null;
  readonly lastErrorMessage: string | null;
  readonly lastErrorAt: number | null;
  readonly failures: number;
  readonly rotationState: RotationState;
  readonly rotationNote: string | null;
  /** Set while a key may have been minted but not yet stored (see migrations/002_rotation.sql). */
  readonly mintingSince: number | null;
  /** What the hub lets this workspace's key do (#11). */
  readonly capabilities: Capabilities;
  /** Start of the current run of failed renewals; null after a success. */
  readonly failingSince: number | null;
}

export interface NewWorkspace {
  readonly name: string;
  readonly hubUrl: string;
  readonly region: string;
  readonly clientTokenId: string;
  readonly clientTokenHash: Buffer;
  readonly fileSink?: string | null;
  readonly apiKey: ApiKey & { readonly name?: string | null; readonly revokeWhenReplaced?: boolean };
  readonly s3?: S3Credentials | null;
  /** Set the minting mark in the same transaction (the CLI is about to mint this installation's key). */
  readonly mintingSince?: number | null;
}

interface WorkspaceRow {
  id: string;
  name: string;
  hub_url: string;
  region: string;
  client_token_id: string;
  client_token_hash: Buffer;
  file_sink: string | null;
  created_at: number;
  s3_bucket: string | null;
  s3_prefix: string | null;
  previous_client_token_id: string | null;
  previous_client_token_hash: Buffer | null;
  previous_client_token_until: number | null;
}

interface ApiKeyRow {
  id: string;
  workspace_id: string;
  state: ApiKeyState;
  token_id: string | null;
  name: string | null;
  sealed_key: string;
  expires_at: number | null;
  stored_at: number;
  revoke_when_replaced: number;
}

interface S3Row {
  workspace_id: string;
  access_key_id: string;
  sealed_secret: string;
  sealed_session_token: string;
  account_id: string | null;
  issued_at: number;
  expires_at: number;
}

const toWorkspace = (r: WorkspaceRow): WorkspaceRecord => ({
  id: r.id,
  name: r.name,
  hubUrl: r.hub_url,
  region: r.region,
  clientTokenId: r.client_token_id,
  clientTokenHash: r.client_token_hash,
  fileSink: r.file_sink,
  createdAt: r.created_at,
  s3Bucket: r.s3_bucket,
  s3Prefix: r.s3_prefix,
  previousClientToken:
    r.previous_client_token_id && r.previous_client_token_hash && r.previous_client_token_until !== null
      ? { id: r.previous_client_token_id, hash: r.previous_client_token_hash, until: r.previous_client_token_until }
      : null,
});

interface AccessRow {
  workspace_id: string;
  kind: GrantKind;
  unix_id: number;
  name: string | null;
}

const toGrant = (r: AccessRow): Grant => ({ kind: r.kind, id: r.unix_id, name: r.name });

interface StatusRow {
  last_renewal_at: number | null;
  last_error_code: string | null;
  last_error_message: string | null;
  last_error_at: number | null;
  failures: number;
  rotation_state: RotationState;
  rotation_note: string | null;
  minting_since: number | null;
  capabilities: string;
  failing_since: number | null;
}

type Id = string;

export interface StoreOptions {
  /** Called by close() when this connection changed rows (the CLI tells the daemon; see daemon/changes.ts). */
  readonly onClosedAfterChanges?: () => void;
}

/** Every statement the store runs, typed by its parameters and rows; prepared once per connection. */
function prepareStatements(db: Database) {
  const q = <Params extends unknown[], Row = never>(sql: string) => new Query<Params, Row>(db, sql);
  return {
    listWorkspaces: q<[], WorkspaceRow>(`SELECT * FROM workspaces ORDER BY name`),
    workspaceByName: q<[name: string], WorkspaceRow>(`SELECT * FROM workspaces WHERE name = ?`),
    insertWorkspace: q<[Omit<WorkspaceRow, 's3_bucket' | 's3_prefix' | `previous_client_token_${string}`>]>(
      `INSERT INTO workspaces (id, name, hub_url, region, client_token_id, client_token_hash, file_sink, created_at)
       VALUES (@id, @name, @hub_url, @region, @client_token_id, @client_token_hash, @file_sink, @created_at)`,
    ),
    insertStatus: q<[workspaceId: Id]>(`INSERT INTO workspace_status (workspace_id) VALUES (?)`),
    deleteWorkspace: q<[name: string]>(`DELETE FROM workspaces WHERE name = ?`),
    // The token being replaced stays valid until @until, or stops at once when that is null.
    setClientToken: q<[{ id: Id; token_id: string; token_hash: Buffer; until: number | null }]>(
      `UPDATE workspaces SET previous_client_token_id = CASE WHEN @until IS NULL THEN NULL ELSE client_token_id END,
         previous_client_token_hash = CASE WHEN @until IS NULL THEN NULL ELSE client_token_hash END,
         previous_client_token_until = @until, client_token_id = @token_id, client_token_hash = @token_hash
       WHERE id = @id`,
    ),
    setFileSink: q<[file: string | null, workspaceId: Id]>(`UPDATE workspaces SET file_sink = ? WHERE id = ?`),
    apiKeys: q<[workspaceId: Id], ApiKeyRow>(`SELECT * FROM api_keys WHERE workspace_id = ? ORDER BY stored_at`),
    apiKeyStates: q<[workspaceId: Id], { state: ApiKeyState }>(`SELECT state FROM api_keys WHERE workspace_id = ?`),
    allApiKeys: q<[], ApiKeyRow>(`SELECT * FROM api_keys ORDER BY stored_at`),
    insertApiKey: q<[ApiKeyRow]>(
      `INSERT INTO api_keys (id, workspace_id, state, token_id, name, sealed_key, expires_at, stored_at, revoke_when_replaced)
       VALUES (@id, @workspace_id, @state, @token_id, @name, @sealed_key, @expires_at, @stored_at, @revoke_when_replaced)`,
    ),
    activatePending: q<[keyId: Id, workspaceId: Id]>(
      `UPDATE api_keys SET state = 'active' WHERE id = ? AND workspace_id = ? AND state = 'pending'`,
    ),
    setKeyDetails: q<[tokenId: string | null, expiresAt: number | null, keyId: Id]>(
      `UPDATE api_keys SET token_id = ?, expires_at = ? WHERE id = ?`,
    ),
    retireActive: q<[workspaceId: Id]>(
      `UPDATE api_keys SET state = 'retiring' WHERE workspace_id = ? AND state = 'active'`,
    ),
    deleteApiKey: q<[keyId: Id]>(`DELETE FROM api_keys WHERE id = ?`),
    deletePending: q<[workspaceId: Id]>(`DELETE FROM api_keys WHERE workspace_id = ? AND state = 'pending'`),
    // A pasted key is forgotten, never revoked, unless the user asked (#11).
    forgetPastedActive: q<[workspaceId: Id]>(
      `DELETE FROM api_keys WHERE workspace_id = ? AND state = 'active' AND name IS NULL AND revoke_when_replaced = 0`,
    ),
    saveS3: q<[S3Row]>(
      `INSERT INTO s3_credentials (workspace_id, access_key_id, sealed_secret, sealed_session_token, account_id, issued_at, expires_at)
       VALUES (@workspace_id, @access_key_id, @sealed_secret, @sealed_session_token, @account_id, @issued_at, @expires_at)
       ON CONFLICT (workspace_id) DO UPDATE SET access_key_id = excluded.access_key_id,
         sealed_secret = excluded.sealed_secret, sealed_session_token = excluded.sealed_session_token,
         account_id = excluded.account_id, issued_at = excluded.issued_at, expires_at = excluded.expires_at`,
    ),
    loadS3: q<[workspaceId: Id], S3Row>(`SELECT * FROM s3_credentials WHERE workspace_id = ?`),
    setAccountId: q<[accountId: string, workspaceId: Id, accessKeyId: string]>(
      `UPDATE s3_credentials SET account_id = ? WHERE workspace_id = ? AND access_key_id = ?`,
    ),
    status: q<[workspaceId: Id], StatusRow>(`SELECT * FROM workspace_status WHERE workspace_id = ?`),
    recordRenewal: q<[at: number, workspaceId: Id]>(
      `UPDATE workspace_status SET last_renewal_at = ?, last_error_code = NULL, last_error_message = NULL,
         last_error_at = NULL, failures = 0, failing_since = NULL WHERE workspace_id = ?`,
    ),
    recordFailure: q<[{ code: string; message: string; at: number; id: Id }]>(
      `UPDATE workspace_status SET last_error_code = @code, last_error_message = @message, last_error_at = @at,
         failures = failures + 1, failing_since = COALESCE(failing_since, @at) WHERE workspace_id = @id`,
    ),
    capabilities: q<[workspaceId: Id], { capabilities: string }>(
      `SELECT capabilities FROM workspace_status WHERE workspace_id = ?`,
    ),
    setCapabilities: q<[capabilities: string, workspaceId: Id]>(
      `UPDATE workspace_status SET capabilities = ? WHERE workspace_id = ?`,
    ),
    setStorage: q<[bucket: string | null, prefix: string | null, workspaceId: Id]>(
      `UPDATE workspaces SET s3_bucket = ?, s3_prefix = ? WHERE id = ?`,
    ),
    setRotation: q<[state: RotationState, note: string | null, workspaceId: Id]>(
      `UPDATE workspace_status SET rotation_state = ?, rotation_note = ? WHERE workspace_id = ?`,
    ),
    markMinting: q<[since: number | null, workspaceId: Id]>(
      `UPDATE workspace_status SET minting_since = ? WHERE workspace_id = ?`,
    ),
    clearMinting: q<[workspaceId: Id, since: number]>(
      `UPDATE workspace_status SET minting_since = NULL WHERE workspace_id = ? AND minting_since = ?`,
    ),
    // Users first, then groups, each by id.
    access: q<[workspaceId: Id], AccessRow>(
      `SELECT * FROM workspace_access WHERE workspace_id = ? ORDER BY kind DESC, unix_id`,
    ),
    allAccess: q<[], AccessRow>(`SELECT * FROM workspace_access ORDER BY workspace_id, kind DESC, unix_id`),
    grantAccess: q<[AccessRow & { granted_at: number }]>(
      `INSERT INTO workspace_access (workspace_id, kind, unix_id, name, granted_at)
       VALUES (@workspace_id, @kind, @unix_id, @name, @granted_at) ON CONFLICT DO NOTHING`,
    ),
    revokeAccess: q<[workspaceId: Id, kind: GrantKind, unixId: number]>(
      `DELETE FROM workspace_access WHERE workspace_id = ? AND kind = ? AND unix_id = ?`,
    ),
    heldTokenIds: q<[], { token_id: string }>(`SELECT token_id FROM api_keys WHERE token_id IS NOT NULL`),
    installId: q<[], { value: string }>(`SELECT value FROM meta WHERE key = 'install_id'`),
  };
}

export class Store {
  private readonly sql: ReturnType<typeof prepareStatements>;

  constructor(
    private readonly db: Database,
    private readonly key: SealingKey,
    private readonly clock: Clock,
    private readonly options: StoreOptions = {},
  ) {
    this.sql = prepareStatements(db);
  }

  /** The database file (for messages). */
  get file(): string {
    return this.db.name;
  }

  /**
   * Run `fn` in one IMMEDIATE transaction (the write lock taken up front, so two writers never
   * deadlock on an upgrade): everything it writes commits together, or nothing does when it throws.
   */
  transaction<T>(fn: () => T): T {
    return guardStorage(this.db.name, () => this.db.transaction(fn).immediate());
  }

  // ---- workspaces -------------------------------------------------------------------------

  listWorkspaces(): WorkspaceRecord[] {
    return this.sql.listWorkspaces.all().map(toWorkspace);
  }

  getWorkspace(name: string): WorkspaceRecord | undefined {
    const row = this.sql.workspaceByName.get(name);
    return row && toWorkspace(row);
  }

  /** Add a workspace with its first API key (and S3 credential, when already fetched) atomically. */
  addWorkspace(input: NewWorkspace): WorkspaceRecord {
    const id = randomUUID();
    const now = this.clock.now();
    this.transaction(() => {
      this.sql.insertWorkspace.run({
        id,
        name: input.name,
        hub_url: input.hubUrl,
        region: input.region,
        client_token_id: input.clientTokenId,
        client_token_hash: input.clientTokenHash,
        file_sink: input.fileSink ?? null,
        created_at: now,
      });
      this.sql.insertStatus.run(id);
      this.insertApiKey(id, 'active', input.apiKey, input.apiKey.name ?? null, input.apiKey.revokeWhenReplaced);
      if (input.s3) this.saveS3(id, input.s3);
      if (input.mintingSince != null) this.sql.markMinting.run(input.mintingSince, id);
    });
    const added = this.getWorkspace(input.name);
    if (!added) throw new Error(`workspace ${input.name} vanished inside its own transaction`);
    return added;
  }

  removeWorkspace(name: string): boolean {
    return this.sql.deleteWorkspace.run(name).changes > 0;
  }

  /**
   * Replace a workspace's client token. With `previousUntil` (ms since the epoch) the token being
   * replaced stays valid until then; without it, it stops at once.
   */
  setClientToken(workspaceId: string, tokenId: string, tokenHash: Buffer, previousUntil: number | null = null): void {
    this.sql.setClientToken.run({ id: workspaceId, token_id: tokenId, token_hash: tokenHash, until: previousUntil });
  }

  setFileSink(workspaceId: string, file: string | null): void {
    this.sql.setFileSink.run(file, workspaceId);
  }

  // ---- who else may read a workspace (#12) ------------------------------------------------

  /** The users and groups besides the daemon's own user allowed to read this workspace. */
  access(workspaceId: string): Grant[] {
    return this.sql.access.all(workspaceId).map(toGrant);
  }

  /** Every workspace's grants, by workspace id (one query, for loading many workspaces). */
  allAccess(): Map<string, Grant[]> {
    const byWorkspace = new Map<string, Grant[]>();
    for (const row of this.sql.allAccess.all()) {
      const grants = byWorkspace.get(row.workspace_id) ?? [];
      grants.push(toGrant(row));
      byWorkspace.set(row.workspace_id, grants);
    }
    return byWorkspace;
  }

  /** Allow a user or group; false when it already was. */
  grantAccess(workspaceId: string, grant: Grant): boolean {
    const row = { workspace_id: workspaceId, kind: grant.kind, unix_id: grant.id, name: grant.name };
    return this.sql.grantAccess.run({ ...row, granted_at: this.clock.now() }).changes > 0;
  }

  /** Withdraw a grant; false when there was none. */
  revokeAccess(workspaceId: string, kind: GrantKind, id: number): boolean {
    return this.sql.revokeAccess.run(workspaceId, kind, id).changes > 0;
  }

  // ---- API keys ---------------------------------------------------------------------------

  apiKeys(workspaceId: string): StoredApiKey[] {
    return this.sql.apiKeys.all(workspaceId).map((r) => this.openApiKey(r));
  }

  allApiKeys(): StoredApiKey[] {
    return this.sql.allApiKeys.all().map((r) => this.openApiKey(r));
  }

  /** The states of a workspace's keys, without opening any sealed value. */
  apiKeyStates(workspaceId: string): ApiKeyState[] {
    return this.sql.apiKeyStates.all(workspaceId).map((r) => r.state);
  }

  /** Store a renewed credential and record the renewal: one transaction, one fsync. */
  saveRenewal(workspaceId: string, c: S3Credentials, at: number): void {
    this.transaction(() => {
      this.saveS3(workspaceId, c);
      this.recordRenewal(workspaceId, at);
    });
  }

  activeApiKey(workspaceId: string): StoredApiKey | undefined {
    return this.apiKeys(workspaceId).find((k) => k.state === 'active');
  }

  insertApiKey(
    workspaceId: string,
    state: ApiKeyState,
    key: ApiKey,
    name: string | null,
    revokeWhenReplaced = false,
  ): StoredApiKey {
    const id = randomUUID();
    const row: ApiKeyRow = {
      id,
      workspace_id: workspaceId,
      state,
      token_id: key.tokenId,
      name,
      sealed_key: seal(this.key, key.key, cellAad('api_keys', 'sealed_key', id)),
      expires_at: key.expiresAt,
      stored_at: this.clock.now(),
      revoke_when_replaced: revokeWhenReplaced ? 1 : 0,
    };
    this.sql.insertApiKey.run(row);
    return this.openApiKey(row);
  }

  setApiKeyDetails(keyId: string, tokenId: string | null, expiresAt: number | null): void {
    this.sql.setKeyDetails.run(tokenId, expiresAt, keyId);
  }

  /**
   * Make the pending key active and the active one retiring (to be revoked), in one transaction; an
   * active key the user pasted is forgotten instead, unless they asked for it to be revoked. Throws
   * (changing nothing) unless pendingId is this workspace's pending key, so a stale id from an
   * interrupted rotation can neither leave the workspace without an active key nor revive a retiring one.
   */
  promotePendingKey(workspaceId: string, pendingId: string): void {
    this.transaction(() => {
      this.sql.forgetPastedActive.run(workspaceId);
      this.sql.retireActive.run(workspaceId);
      if (this.sql.activatePending.run(pendingId, workspaceId).changes !== 1) {
        throw new Error(`API key ${pendingId} is not the pending key of workspace ${workspaceId}`);
      }
    });
  }

  /**
   * Replace the active key with one the user supplied (after rotation needed them). A pending key
   * from an interrupted rotation is dropped, so recovery can never promote it over the user's key.
   * The old key is kept as retiring (to be revoked) only if we minted it; a key the user created
   * stays theirs to revoke, since it may be in use elsewhere. With `mintingSince` the minting mark
   * is set in the same transaction (the CLI is about to mint this installation's own key).
   */
  replaceActiveKey(
    workspaceId: string,
    key: ApiKey,
    options: { revokeWhenReplaced?: boolean; mintingSince?: number | null } = {},
  ): StoredApiKey {
    return this.transaction(() => {
      this.sql.deletePending.run(workspaceId);
      this.sql.forgetPastedActive.run(workspaceId);
      this.sql.retireActive.run(workspaceId);
      this.sql.setRotation.run('ok', null, workspaceId);
      if (options.mintingSince != null) this.sql.markMinting.run(options.mintingSince, workspaceId);
      return this.insertApiKey(workspaceId, 'active', key, null, options.revokeWhenReplaced);
    });
  }

  deleteApiKey(keyId: string): void {
    this.sql.deleteApiKey.run(keyId);
  }

  private openApiKey(r: ApiKeyRow): StoredApiKey {
    return {
      id: r.id,
      workspaceId: r.workspace_id,
      state: r.state,
      tokenId: r.token_id,
      name: r.name,
      key: open(this.key, r.sealed_key, cellAad('api_keys', 'sealed_key', r.id)),
      expiresAt: r.expires_at,
      storedAt: r.stored_at,
      revokeWhenReplaced: r.revoke_when_replaced === 1,
    };
  }

  // ---- S3 credentials ---------------------------------------------------------------------

  saveS3(workspaceId: string, c: S3Credentials): void {
    this.sql.saveS3.run({
      workspace_id: workspaceId,
      access_key_id: c.accessKeyId,
      sealed_secret: seal(this.key, c.secretAccessKey, cellAad('s3_credentials', 'sealed_secret', workspaceId)),
      sealed_session_token: seal(
        this.key,
        c.sessionToken,
        cellAad('s3_credentials', 'sealed_session_token', workspaceId),
      ),
      account_id: c.accountId ?? null,
      issued_at: c.issuedAt,
      expires_at: c.expiresAt,
    });
  }

  loadS3(workspaceId: string): S3Credentials | undefined {
    const r = this.sql.loadS3.get(workspaceId);
    if (!r) return undefined;
    return {
      accessKeyId: r.access_key_id,
      secretAccessKey: open(this.key, r.sealed_secret, cellAad('s3_credentials', 'sealed_secret', workspaceId)),
      sessionToken: open(
        this.key,
        r.sealed_session_token,
        cellAad('s3_credentials', 'sealed_session_token', workspaceId),
      ),
      accountId: r.account_id ?? undefined,
      issuedAt: r.issued_at,
      expiresAt: r.expires_at,
    };
  }

  /** Fill in the account id, but only if the credential is still the one it was learned from. */
  setAccountId(workspaceId: string, accessKeyId: string, accountId: string): void {
    this.sql.setAccountId.run(accountId, workspaceId, accessKeyId);
  }

  // ---- status -----------------------------------------------------------------------------

  status(workspaceId: string): WorkspaceStatus {
    const r = this.sql.status.get(workspaceId);
    return {
      lastRenewalAt: r?.last_renewal_at ?? null,
      lastErrorCode: r?.last_error_code ?? null,
      lastErrorMessage: r?.last_error_message ?? null,
      lastErrorAt: r?.last_error_at ?? null,
      failures: r?.failures ?? 0,
      rotationState: r?.rotation_state ?? 'ok',
      rotationNote: r?.rotation_note ?? null,
      mintingSince: r?.minting_since ?? null,
      capabilities: parseCapabilities(r?.capabilities ?? '{}'),
      failingSince: r?.failing_since ?? null,
    };
  }

  /** One statement, so the renewal time and the cleared error are recorded together or not at all. */
  recordRenewal(workspaceId: string, at: number): void {
    this.sql.recordRenewal.run(at, workspaceId);
  }

  recordFailure(workspaceId: string, code: string, message: string, at: number): void {
    this.sql.recordFailure.run({ code, message, at, id: workspaceId });
  }

  /** Record what the hub answered about one ability of this workspace's key. */
  setCapability(workspaceId: string, name: Capability, fact: CapabilityFact): void {
    this.transaction(() => {
      const row = this.sql.capabilities.get(workspaceId);
      if (!row) return;
      const caps = { ...parseCapabilities(row.capabilities), [name]: fact };
      this.sql.setCapabilities.run(JSON.stringify(caps), workspaceId);
    });
  }

  setStorageFacts(workspaceId: string, bucket: string | null, prefix: string | null): void {
    this.sql.setStorage.run(bucket, prefix, workspaceId);
  }

  setRotationState(workspaceId: string, state: RotationState, note: string | null): void {
    this.sql.setRotation.run(state, note, workspaceId);
  }

  markMinting(workspaceId: string, since: number | null): void {
    this.sql.markMinting.run(since, workspaceId);
  }

  /** Clear the minting mark, but only if it is still the one a token list was taken for. */
  clearMinting(workspaceId: string, since: number): void {
    this.sql.clearMinting.run(workspaceId, since);
  }

  /** The hub token ids of every key held, in any workspace and state, without opening a secret. */
  heldTokenIds(): Set<string> {
    return new Set(this.sql.heldTokenIds.all().map((r) => r.token_id));
  }

  /** Store a freshly minted key as pending and clear the minting mark, in one transaction. */
  insertPendingKey(workspaceId: string, key: ApiKey, name: string): StoredApiKey {
    return this.transaction(() => {
      const stored = this.insertApiKey(workspaceId, 'pending', key, name);
      this.sql.markMinting.run(null, workspaceId);
      return stored;
    });
  }

  /** A random id of this installation, part of the names of the keys it mints. */
  installId(): string {
    return this.sql.installId.get()?.value ?? 'unknown';
  }

  /** Changes whenever another connection (the CLI) commits: the daemon checks it to pick up edits. */
  dataVersion(): number {
    return guardStorage(this.db.name, () => this.db.pragma('data_version', { simple: true }) as number);
  }

  /** Write a consistent, still sealed copy of the database to `dest` (online: writers carry on). */
  backupTo(dest: string): Promise<void> {
    return backupDatabase(this.db, dest);
  }

  /** An automatic backup into the data directory's backups/, keeping the newest few. */
  takeAutomaticBackup(paths: DataPaths): Promise<string> {
    return takeRotatingBackup(this.db, paths, this.clock.now());
  }

  close(): void {
    if (!this.db.open) return;
    const changed = !this.db.readonly && (this.db.prepare('SELECT total_changes()').pluck().get() as number) > 0;
    this.db.close();
    if (changed) this.options.onClosedAfterChanges?.();
  }
}

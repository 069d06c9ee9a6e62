import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import t from 'tap';
import type { S3Credentials } from '../../src/core/types.js';
import { openDatabase } from '../../src/store/database.js';
import { MASTER_KEY_BYTES, type SealingKey, sealingKey } from '../../src/store/seal.js';
import { type NewWorkspace, Store } from '../../src/store/store.js';
import { rawDb } from '../helpers/raw-db.js';
import { sealReason } from '../helpers/seal.js';

interface Fixture {
  store: Store;
  file: string;
  key: SealingKey;
  clock: { now(): number; set(ms: number): void };
}

function fakeClock(start = 1_700_000_000_000) {
  let now = start;
  return {
    now: () => now,
    set: (ms: number) => {
      now = ms;
    },
  };
}

function openStore(t: { testdir(): string; teardown(fn: () => void): void }): Fixture {
  const file = join(t.testdir(), 'data', 'credd.db');
  const key = sealingKey(randomBytes(MASTER_KEY_BYTES));
  const clock = fakeClock();
  const store = new Store(openDatabase({ file, key, create: true }), key, clock);
  t.teardown(() => store.close());
  return { store, file, key, clock };
}

let counter = 0;
function workspace(name: string, extra: Partial<NewWorkspace> = {}): NewWorkspace {
  counter++;
  return {
    name,
    hubUrl: 'https://hub.example',
    region: 'eu-west-2',
    clientTokenId: `ct-${name}-${counter}`,
    clientTokenHash: createHash('sha256').update(`token-${name}-${counter}`).digest(),
    apiKey: {
      tokenId: `tok-${name}`,
      key: `api-key-of-${name}`,
      expiresAt: 1_800_000_000_000,
      name: `eodh-credd-${name}`,
    },
    ...extra,
  };
}

function s3(tag: string, extra: Partial<S3Credentials> = {}): S3Credentials {
  return {
    accessKeyId: `ASIA${tag.toUpperCase()}`,
    secretAccessKey: `secret-access-key-${tag}`,
    sessionToken: `session-token-${tag}`,
    issuedAt: 1_700_000_000_000,
    expiresAt: 1_700_003_600_000,
    ...extra,
  };
}

const count = (store: Store, table: string, workspaceId?: string): number =>
  workspaceId === undefined
    ? (rawDb(store).prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number)
    : (rawDb(store).prepare(`SELECT count(*) FROM ${table} WHERE workspace_id = ?`).pluck().get(workspaceId) as number);

const states = (store: Store, workspaceId: string) =>
  store
    .apiKeys(workspaceId)
    .map((k) => `${k.key}:${k.state}`)
    .sort();

/** A workspace's status before anything happened to it. */
const NEW_STATUS = {
  lastRenewalAt: null,
  lastErrorCode: null,
  lastErrorMessage: null,
  lastErrorAt: null,
  failures: 0,
  rotationState: 'ok',
  rotationNote: null,
  mintingSince: null,
  capabilities: {},
  failingSince: null,
};

t.test('workspaces: add, get, list', async (t) => {
  const { store, clock } = openStore(t);
  t.same(store.listWorkspaces(), []);
  t.equal(store.getWorkspace('nope'), undefined);
  const input = workspace('beta', { fileSink: '/home/u/.aws/credentials' });
  const beta = store.addWorkspace(input);
  t.match(beta.id, /^[0-9a-f-]{36}$/);
  t.equal(beta.name, 'beta');
  t.equal(beta.hubUrl, 'https://hub.example');
  t.equal(beta.region, 'eu-west-2');
  t.equal(beta.clientTokenId, input.clientTokenId);
  t.ok(
    Buffer.isBuffer(beta.clientTokenHash) && beta.clientTokenHash.equals(input.clientTokenHash),
    'hash round trip as bytes',
  );
  t.equal(beta.fileSink, '/home/u/.aws/credentials');
  t.equal(beta.createdAt, clock.now());
  const alpha = store.addWorkspace(workspace('alpha'));
  t.equal(alpha.fileSink, null, 'no file sink by default');
  t.not(alpha.id, beta.id);
  t.same(
    store.listWorkspaces().map((w) => w.name),
    ['alpha', 'beta'],
    'ordered by name',
  );
  t.same(store.getWorkspace('beta'), beta);

  const active = store.activeApiKey(beta.id);
  t.match(active, {
    workspaceId: beta.id,
    state: 'active',
    key: 'api-key-of-beta',
    tokenId: 'tok-beta',
    name: 'eodh-credd-beta',
    expiresAt: 1_800_000_000_000,
  });
  t.equal(store.loadS3(beta.id), undefined, 'no S3 credential yet');
  t.same(store.status(beta.id), NEW_STATUS);
  t.equal(count(store, 'workspace_status', beta.id), 1, 'status row created');
});

t.test('addWorkspace with its first S3 credential', async (t) => {
  const { store } = openStore(t);
  const creds = s3('first', { accountId: '123456789012' });
  const w = store.addWorkspace(workspace('ws', { s3: creds }));
  t.same(store.loadS3(w.id), creds);
});

t.test('duplicate name (or client token id) is rejected whole', async (t) => {
  const { store } = openStore(t);
  const first = store.addWorkspace(workspace('dup'));
  t.throws(() => store.addWorkspace(workspace('dup', { s3: s3('x') })), { code: 'SQLITE_CONSTRAINT_UNIQUE' });
  t.throws(() => store.addWorkspace(workspace('other', { clientTokenId: first.clientTokenId })), {
    code: 'SQLITE_CONSTRAINT_UNIQUE',
  });
  t.equal(count(store, 'workspaces'), 1);
  t.equal(count(store, 'api_keys'), 1, 'no orphan key');
  t.equal(count(store, 's3_credentials'), 0, 'no orphan credential');
  t.equal(count(store, 'workspace_status'), 1);
  t.equal(store.activeApiKey(first.id)?.key, 'api-key-of-dup', 'the first is intact');
});

t.test('removeWorkspace cascades', async (t) => {
  const { store } = openStore(t);
  const gone = store.addWorkspace(workspace('gone', { s3: s3('gone') }));
  const kept = store.addWorkspace(workspace('kept', { s3: s3('kept') }));
  store.insertApiKey(gone.id, 'pending', { tokenId: null, key: 'pending-key', expiresAt: null }, 'n');
  store.recordFailure(gone.id, 'e', 'm', 1);
  store.grantAccess(gone.id, { kind: 'user', id: 1001, name: 'alice' });
  store.grantAccess(kept.id, { kind: 'group', id: 2000, name: 'eo' });
  t.equal(store.removeWorkspace('gone'), true);
  t.equal(store.removeWorkspace('gone'), false, 'second removal reports nothing removed');
  t.equal(store.getWorkspace('gone'), undefined);
  for (const table of ['api_keys', 's3_credentials', 'workspace_status', 'workspace_access']) {
    t.equal(count(store, table, gone.id), 0, `${table} rows deleted`);
    t.ok(count(store, table, kept.id) > 0, `${table} rows of the other workspace kept`);
  }
  t.same(store.loadS3(kept.id), s3('kept'));
  t.same(rawDb(store).pragma('foreign_key_check'), [], 'no dangling references');
});

t.test('access grants (#12): users first, then groups; once each; withdrawn; by workspace', async (t) => {
  const { store, clock } = openStore(t);
  const a = store.addWorkspace(workspace('a'));
  const b = store.addWorkspace(workspace('b'));
  t.same(store.access(a.id), []);
  t.same(store.allAccess(), new Map());
  t.equal(store.grantAccess(a.id, { kind: 'group', id: 2000, name: 'eo' }), true);
  t.equal(store.grantAccess(a.id, { kind: 'user', id: 1002, name: null }), true);
  t.equal(store.grantAccess(a.id, { kind: 'user', id: 1001, name: 'alice' }), true);
  t.equal(store.grantAccess(a.id, { kind: 'user', id: 1001, name: 'alice-renamed' }), false, 'already allowed');
  t.equal(store.grantAccess(a.id, { kind: 'group', id: 1001, name: 'alice' }), true, 'a gid is not a uid');
  t.equal(store.grantAccess(b.id, { kind: 'user', id: 1001, name: 'alice' }), true, 'per workspace');
  t.same(store.access(a.id), [
    { kind: 'user', id: 1001, name: 'alice' },
    { kind: 'user', id: 1002, name: null },
    { kind: 'group', id: 1001, name: 'alice' },
    { kind: 'group', id: 2000, name: 'eo' },
  ]);
  t.same(
    store.allAccess(),
    new Map([
      [a.id, store.access(a.id)],
      [b.id, [{ kind: 'user', id: 1001, name: 'alice' }]],
    ]),
  );
  t.equal(
    rawDb(store).prepare('SELECT granted_at FROM workspace_access WHERE unix_id = 1002').pluck().get(),
    clock.now(),
  );
  t.equal(store.revokeAccess(a.id, 'user', 1001), true);
  t.equal(store.revokeAccess(a.id, 'user', 1001), false, 'nothing left to withdraw');
  t.equal(store.revokeAccess(a.id, 'user', 2000), false, 'a user grant by a group id: none');
  t.same(
    store.access(a.id).map((g) => `${g.kind}:${g.id}`),
    ['user:1002', 'group:1001', 'group:2000'],
  );
  t.same(store.access(b.id), [{ kind: 'user', id: 1001, name: 'alice' }], 'the other workspace keeps its grant');
  t.throws(() => store.grantAccess(a.id, { kind: 'user', id: -1, name: null }), 'a negative id is refused');
  t.throws(
    () => store.grantAccess('no-such-id', { kind: 'user', id: 1, name: null }),
    'an unknown workspace is refused',
  );
});

t.test('setClientToken and setFileSink', async (t) => {
  const { store } = openStore(t);
  const w = store.addWorkspace(workspace('w'));
  const other = store.addWorkspace(workspace('other'));
  const hash = randomBytes(32);
  store.setClientToken(w.id, 'ct-new', hash);
  store.setFileSink(w.id, '/tmp/creds');
  const after = store.getWorkspace('w')!;
  t.equal(after.clientTokenId, 'ct-new');
  t.ok(after.clientTokenHash.equals(hash));
  t.equal(after.fileSink, '/tmp/creds');
  store.setFileSink(w.id, null);
  t.equal(store.getWorkspace('w')!.fileSink, null);
  t.same(store.getWorkspace('other'), other, 'other workspace untouched');
});

t.test('API keys: one active, one pending, promotion', async (t) => {
  const { store, clock } = openStore(t);
  const w = store.addWorkspace(workspace('w'));
  const first = store.activeApiKey(w.id)!;
  clock.set(clock.now() + 1000);
  const pending = store.insertApiKey(
    w.id,
    'pending',
    { tokenId: 'tok-2', key: 'second-key', expiresAt: 5 },
    'eodh-credd-w-2',
  );
  t.match(pending, {
    state: 'pending',
    key: 'second-key',
    tokenId: 'tok-2',
    name: 'eodh-credd-w-2',
    storedAt: clock.now(),
  });
  t.equal(store.activeApiKey(w.id)?.id, first.id, 'pending does not replace active');

  // The partial unique indexes allow one active and one pending per workspace.
  t.throws(() => store.insertApiKey(w.id, 'pending', { tokenId: null, key: 'third', expiresAt: null }, null), {
    code: 'SQLITE_CONSTRAINT_UNIQUE',
  });
  t.throws(() => store.insertApiKey(w.id, 'active', { tokenId: null, key: 'third', expiresAt: null }, null), {
    code: 'SQLITE_CONSTRAINT_UNIQUE',
  });
  t.throws(() => rawDb(store).prepare(`UPDATE api_keys SET state = 'active' WHERE id = ?`).run(pending.id), {
    code: 'SQLITE_CONSTRAINT_UNIQUE',
  });
  t.throws(() => rawDb(store).prepare(`UPDATE api_keys SET state = 'bogus' WHERE id = ?`).run(pending.id), {
    code: 'SQLITE_CONSTRAINT_CHECK',
  });
  const other = store.addWorkspace(workspace('other'));
  store.insertApiKey(other.id, 'pending', { tokenId: null, key: 'other-pending', expiresAt: null }, null);
  t.pass('another workspace may have its own pending key');

  store.promotePendingKey(w.id, pending.id);
  const keys = store.apiKeys(w.id);
  t.equal(keys.filter((k) => k.state === 'active').length, 1, 'exactly one active');
  t.equal(store.activeApiKey(w.id)?.id, pending.id, 'the pending one');
  t.equal(keys.find((k) => k.id === first.id)?.state, 'retiring', 'the old one is retiring');
  t.equal(keys.filter((k) => k.state === 'pending').length, 0, 'no pending left');
  t.same(states(store, other.id), ['api-key-of-other:active', 'other-pending:pending'], 'other workspace untouched');

  // A second rotation: two retiring keys may coexist.
  const third = store.insertApiKey(w.id, 'pending', { tokenId: null, key: 'third-key', expiresAt: null }, null);
  store.promotePendingKey(w.id, third.id);
  t.same(states(store, w.id), ['api-key-of-w:retiring', 'second-key:retiring', 'third-key:active']);
});

t.test("promotePendingKey refuses anything but this workspace's pending key", async (t) => {
  const { store } = openStore(t);
  const w = store.addWorkspace(workspace('w'));
  const other = store.addWorkspace(workspace('other'));
  const otherPending = store.insertApiKey(
    other.id,
    'pending',
    { tokenId: null, key: 'other-pending', expiresAt: null },
    null,
  );
  const retired = store.replaceActiveKey(w.id, { tokenId: null, key: 'current', expiresAt: null });
  const old = store.apiKeys(w.id).find((k) => k.state === 'retiring')!;
  t.equal(retired.key, 'current');
  const before = states(store, w.id);
  const otherBefore = states(store, other.id);
  for (const [what, id] of [
    ['unknown id', 'no-such-key'],
    ['a retiring key', old.id],
    ['the active key itself', retired.id],
    ["another workspace's pending key", otherPending.id],
  ] as const) {
    t.throws(() => store.promotePendingKey(w.id, id), { message: /is not the pending key of workspace/ }, what);
    t.same(states(store, w.id), before, `${what}: keys unchanged, still one active`);
    t.same(states(store, other.id), otherBefore, `${what}: other workspace unchanged`);
  }
});

t.test('replaceActiveKey, setApiKeyDetails, deleteApiKey, allApiKeys', async (t) => {
  const { store, clock } = openStore(t);
  const w = store.addWorkspace(workspace('w'));
  const v = store.addWorkspace(workspace('v'));
  const old = store.activeApiKey(w.id)!;
  clock.set(clock.now() + 5);
  const replaced = store.replaceActiveKey(w.id, { tokenId: 'user-tok', key: 'user-supplied', expiresAt: 99 });
  t.match(replaced, {
    state: 'active',
    key: 'user-supplied',
    tokenId: 'user-tok',
    name: null,
    expiresAt: 99,
    storedAt: clock.now(),
  });
  t.equal(store.activeApiKey(w.id)?.id, replaced.id);
  t.equal(store.apiKeys(w.id).find((k) => k.id === old.id)?.state, 'retiring');
  t.equal(store.activeApiKey(v.id)?.key, 'api-key-of-v', 'other workspace keeps its active key');

  store.setApiKeyDetails(replaced.id, 'learned-tok', 1234);
  t.match(store.activeApiKey(w.id), { tokenId: 'learned-tok', expiresAt: 1234, key: 'user-supplied' });
  store.setApiKeyDetails(replaced.id, null, null);
  t.match(store.activeApiKey(w.id), { tokenId: null, expiresAt: null });

  store.deleteApiKey(old.id);
  t.same(
    store.apiKeys(w.id).map((k) => k.id),
    [replaced.id],
  );
  t.same(
    store
      .allApiKeys()
      .map((k) => k.key)
      .sort(),
    ['api-key-of-v', 'user-supplied'],
  );
});

t.test('S3 credentials: round trip, upsert, account id', async (t) => {
  const { store } = openStore(t);
  const w = store.addWorkspace(workspace('w'));
  const v = store.addWorkspace(workspace('v'));
  t.equal(store.loadS3(w.id), undefined);
  const first = s3('one');
  store.saveS3(w.id, first);
  const loaded = store.loadS3(w.id)!;
  t.same(loaded, first);
  t.equal(loaded.accountId, undefined, 'no account id yet');
  t.equal(store.loadS3(v.id), undefined, 'per workspace');

  store.setAccountId(w.id, 'ASIAOTHER', '111111111111');
  t.equal(store.loadS3(w.id)!.accountId, undefined, 'ignored for a different access key id');
  store.setAccountId(v.id, first.accessKeyId, '222222222222');
  t.equal(store.loadS3(w.id)!.accountId, undefined, 'ignored for a different workspace');
  store.setAccountId(w.id, first.accessKeyId, '123456789012');
  t.equal(store.loadS3(w.id)!.accountId, '123456789012', 'applied for the matching access key id');

  const second = s3('two', { issuedAt: 2, expiresAt: 3 });
  store.saveS3(w.id, second);
  t.same(store.loadS3(w.id), second, 'replaced whole, account id of the old one dropped');
  t.equal(count(store, 's3_credentials', w.id), 1, 'one row per workspace');
  const unicode = s3('uni', { secretAccessKey: 'sécret/🔑', sessionToken: '' });
  store.saveS3(v.id, unicode);
  t.same(store.loadS3(v.id), unicode, 'unicode and empty values round trip');
});

t.test('status: failures, renewal, rotation', async (t) => {
  const { store } = openStore(t);
  const w = store.addWorkspace(workspace('w'));
  const v = store.addWorkspace(workspace('v'));
  store.recordFailure(w.id, 'hub_unavailable', 'The hub answered 503.', 100);
  store.recordFailure(w.id, 'hub_timeout', 'The hub did not answer.', 200);
  t.match(store.status(w.id), {
    failures: 2,
    lastErrorCode: 'hub_timeout',
    lastErrorMessage: 'The hub did not answer.',
    lastErrorAt: 200,
    lastRenewalAt: null,
  });
  t.equal(store.status(v.id).failures, 0, 'per workspace');
  store.recordRenewal(w.id, 300);
  t.same(store.status(w.id), { ...NEW_STATUS, lastRenewalAt: 300 });
  store.setRotationState(w.id, 'needs_user', 'The API key expires in 2 days; run "eodh-credd set-key w".');
  t.match(store.status(w.id), { rotationState: 'needs_user', rotationNote: /expires in 2 days/, lastRenewalAt: 300 });
  store.recordRenewal(w.id, 400);
  t.equal(store.status(w.id).rotationState, 'needs_user', 'a renewal does not clear the rotation state');
  store.setRotationState(w.id, 'ok', null);
  t.match(store.status(w.id), { rotationState: 'ok', rotationNote: null });
  t.throws(() => store.setRotationState(w.id, 'bogus' as 'ok', null), { code: 'SQLITE_CONSTRAINT_CHECK' });
  t.same(store.status('unknown').failures, 0, 'unknown workspace: defaults');
});

t.test('recordRenewal is all or nothing', async (t) => {
  const { store } = openStore(t);
  const w = store.addWorkspace(workspace('w'));
  store.recordFailure(w.id, 'hub_unavailable', 'The hub answered 503.', 100);
  // Make clearing the error fail, as a busy database or a full disk might.
  rawDb(store).exec(`CREATE TEMP TRIGGER no_clear BEFORE UPDATE OF last_error_code ON workspace_status
                 WHEN NEW.last_error_code IS NULL BEGIN SELECT RAISE(ABORT, 'cannot clear'); END`);
  t.throws(() => store.recordRenewal(w.id, 300), /cannot clear/);
  t.match(
    store.status(w.id),
    { lastRenewalAt: null, failures: 1, lastErrorCode: 'hub_unavailable' },
    'nothing half-recorded',
  );
  rawDb(store).exec(`DROP TRIGGER no_clear`);
  store.recordRenewal(w.id, 300);
  t.match(store.status(w.id), { lastRenewalAt: 300, failures: 0, lastErrorCode: null });
});

t.test('sealed values swapped between rows fail to open', async (t) => {
  const { store } = openStore(t);
  const a = store.addWorkspace(workspace('a', { s3: s3('a') }));
  const b = store.addWorkspace(workspace('b', { s3: s3('b') }));
  t.same(store.loadS3(a.id), s3('a'));

  const swapS3 = (column: 'sealed_secret' | 'sealed_session_token') =>
    rawDb(store).transaction(() => {
      const get = rawDb(store).prepare(`SELECT ${column} FROM s3_credentials WHERE workspace_id = ?`).pluck();
      const va = get.get(a.id);
      const vb = get.get(b.id);
      const set = rawDb(store).prepare(`UPDATE s3_credentials SET ${column} = ? WHERE workspace_id = ?`);
      set.run(vb, a.id);
      set.run(va, b.id);
    })();

  swapS3('sealed_secret');
  t.equal(
    sealReason(() => store.loadS3(a.id)),
    'tampered',
    'a',
  );
  t.equal(
    sealReason(() => store.loadS3(b.id)),
    'tampered',
    'b',
  );
  swapS3('sealed_secret');
  t.same(store.loadS3(a.id), s3('a'), 'swapping back restores them');
  swapS3('sealed_session_token');
  t.equal(
    sealReason(() => store.loadS3(a.id)),
    'tampered',
  );
  t.equal(
    sealReason(() => store.loadS3(b.id)),
    'tampered',
  );
  swapS3('sealed_session_token');

  // Moving a value to another column of the same row fails too.
  rawDb(store)
    .prepare(`UPDATE s3_credentials SET sealed_session_token = sealed_secret WHERE workspace_id = ?`)
    .run(a.id);
  t.equal(
    sealReason(() => store.loadS3(a.id)),
    'tampered',
    'other column',
  );
  t.same(store.loadS3(b.id), s3('b'), 'b unaffected');

  // API keys: swap sealed_key between two rows (other workspace, then same workspace).
  const ka = store.activeApiKey(a.id)!;
  const kb = store.activeApiKey(b.id)!;
  const swapKeys = (x: string, y: string) =>
    rawDb(store).transaction(() => {
      const get = rawDb(store).prepare(`SELECT sealed_key FROM api_keys WHERE id = ?`).pluck();
      const vx = get.get(x);
      const vy = get.get(y);
      const set = rawDb(store).prepare(`UPDATE api_keys SET sealed_key = ? WHERE id = ?`);
      set.run(vy, x);
      set.run(vx, y);
    })();
  swapKeys(ka.id, kb.id);
  t.equal(
    sealReason(() => store.apiKeys(a.id)),
    'tampered',
    'workspace a keys',
  );
  t.equal(
    sealReason(() => store.apiKeys(b.id)),
    'tampered',
    'workspace b keys',
  );
  t.equal(
    sealReason(() => store.activeApiKey(a.id)),
    'tampered',
  );
  t.equal(
    sealReason(() => store.allApiKeys()),
    'tampered',
  );
  swapKeys(ka.id, kb.id);
  t.equal(store.activeApiKey(a.id)?.key, 'api-key-of-a');

  const pending = store.insertApiKey(a.id, 'pending', { tokenId: null, key: 'pending-of-a', expiresAt: null }, null);
  swapKeys(ka.id, pending.id);
  t.equal(
    sealReason(() => store.apiKeys(a.id)),
    'tampered',
    'rows of the same workspace',
  );
  t.equal(store.activeApiKey(b.id)?.key, 'api-key-of-b', 'b unaffected');
});

t.test('a value sealed under another master key is reported as such', async (t) => {
  const { store, file } = openStore(t);
  const w = store.addWorkspace(workspace('w', { s3: s3('w') }));
  const stranger = new Store(rawDb(store), sealingKey(randomBytes(MASTER_KEY_BYTES)), fakeClock());
  t.equal(
    sealReason(() => stranger.loadS3(w.id)),
    'wrong_key',
  );
  t.equal(
    sealReason(() => stranger.apiKeys(w.id)),
    'wrong_key',
  );
  t.ok(existsSync(file));
});

t.test('no secret plaintext reaches the database file or its WAL', async (t) => {
  const { store, file } = openStore(t);
  const apiKey = 'SECRET-API-KEY-d41d8cd98f00b204e980';
  const pendingKey = 'SECRET-PENDING-KEY-0b2a1c9e7f3d';
  const creds: S3Credentials = {
    accessKeyId: 'ASIAVISIBLEACCESSKEY',
    secretAccessKey: 'SECRET-ACCESS-KEY-wJalrXUtnFEMIK7MDENG',
    sessionToken: 'SECRET-SESSION-TOKEN-IQoJb3JpZ2luX2VjEJr',
    issuedAt: 1,
    expiresAt: 2,
  };
  const secrets = [apiKey, pendingKey, creds.secretAccessKey, creds.sessionToken];
  const w = store.addWorkspace({ ...workspace('w'), apiKey: { tokenId: 'tok', key: apiKey, expiresAt: null } });
  store.saveS3(w.id, creds);
  store.insertApiKey(w.id, 'pending', { tokenId: null, key: pendingKey, expiresAt: null }, null);
  t.equal(store.loadS3(w.id)?.secretAccessKey, creds.secretAccessKey, 'stored and readable');

  const wal = `${file}-wal`;
  t.ok(existsSync(wal) && statSync(wal).size > 0, 'the writes are (still) in the WAL');
  const whileOpen = { db: readFileSync(file), wal: readFileSync(wal) };
  t.ok(whileOpen.wal.includes(creds.accessKeyId), 'the access key id is in the WAL: the search can find plain text');
  for (const [name, bytes] of Object.entries(whileOpen)) {
    for (const secret of secrets) {
      t.notOk(bytes.includes(secret), `${name} while open: no ${secret.slice(0, 20)}`);
      t.notOk(bytes.includes(Buffer.from(secret, 'utf16le')), `${name} while open: not even as UTF-16`);
    }
  }

  store.close();
  t.notOk(existsSync(wal), 'WAL checkpointed and removed on close');
  const closed = readFileSync(file);
  t.ok(closed.includes(creds.accessKeyId), 'the access key id reached the database file');
  for (const secret of secrets) t.notOk(closed.includes(secret), `database after close: no ${secret.slice(0, 20)}`);
});

t.test('dataVersion changes when another connection commits', async (t) => {
  const { store, file, key } = openStore(t);
  const other = new Store(openDatabase({ file, key }), key, fakeClock());
  t.teardown(() => other.close());

  const v0 = store.dataVersion();
  t.equal(store.dataVersion(), v0, 'stable without writes');
  store.addWorkspace(workspace('own'));
  t.equal(store.dataVersion(), v0, 'own commits do not change it');

  const w = other.addWorkspace(workspace('from-cli'));
  const v1 = store.dataVersion();
  t.not(v1, v0, "changes after the other connection's commit");
  t.equal(store.getWorkspace('from-cli')?.id, w.id, 'and the change is visible');

  // A plain SQLite connection (no Store) counts too.
  const raw = new Sqlite(file);
  t.teardown(() => raw.close());
  raw.prepare(`UPDATE workspaces SET region = 'eu-west-1' WHERE id = ?`).run(w.id);
  t.not(store.dataVersion(), v1);
  t.equal(store.getWorkspace('from-cli')?.region, 'eu-west-1');
});

t.test('close is idempotent', async (t) => {
  const { store } = openStore(t);
  store.close();
  t.doesNotThrow(() => store.close());
  t.notOk(rawDb(store).open);
});

t.test('replaceActiveKey drops a pending key, forgets a user key, retires a minted one', async (t) => {
  const { store } = openStore(t);
  const w = store.addWorkspace({ ...workspace('w'), apiKey: { tokenId: 'u1', key: 'user-made', expiresAt: null } });
  store.insertPendingKey(w.id, { tokenId: 'p1', key: 'pending-one', expiresAt: 5 }, 'eodh-credd host abcd 2026');
  store.setRotationState(w.id, 'needs_user', 'help');
  store.replaceActiveKey(w.id, { tokenId: 'u2', key: 'user-fresh', expiresAt: 10 });
  t.same(
    store.apiKeys(w.id).map((k) => [k.state, k.key]),
    [['active', 'user-fresh']],
    'pending dropped, user-created old key forgotten (not queued for revocation)',
  );
  t.equal(store.status(w.id).rotationState, 'ok');
  store.insertPendingKey(w.id, { tokenId: 'm1', key: 'minted', expiresAt: 20 }, 'eodh-credd host abcd 2026');
  store.promotePendingKey(w.id, store.apiKeys(w.id).find((k) => k.state === 'pending')!.id);
  store.replaceActiveKey(w.id, { tokenId: 'u3', key: 'user-third', expiresAt: 30 });
  t.same(
    store
      .apiKeys(w.id)
      .map((k) => [k.state, k.key])
      .sort(),
    [
      ['active', 'user-third'],
      ['retiring', 'minted'],
    ].sort(),
    'a key we minted is retired, to be revoked (user-fresh was forgotten by the promotion: a pasted key is never revoked)',
  );
});

t.test('install id and the minting mark', async (t) => {
  const { store } = openStore(t);
  t.match(store.installId(), /^[0-9a-f]{8}$/);
  const w = store.addWorkspace(workspace('w'));
  store.markMinting(w.id, 1234);
  t.equal(store.status(w.id).mintingSince, 1234);
  store.insertPendingKey(w.id, { tokenId: 'p', key: 'k', expiresAt: 1 }, 'n');
  t.equal(store.status(w.id).mintingSince, null, 'storing the minted key clears the mark in the same transaction');
});

t.test('hub facts (#11): capabilities, storage, failing since, pasted keys never queued for revocation', async (t) => {
  const { store } = openStore(t);
  const w = store.addWorkspace({
    ...workspace('w'),
    apiKey: { tokenId: 'u1', key: 'pasted', expiresAt: null, revokeWhenReplaced: true },
    mintingSince: 42,
  });
  t.equal(store.status(w.id).mintingSince, 42, 'the minting mark goes in with the workspace');
  store.clearMinting(w.id, 41);
  t.equal(store.status(w.id).mintingSince, 42, 'a list taken for another mark does not clear it');
  store.clearMinting(w.id, 42);
  t.equal(store.status(w.id).mintingSince, null);

  store.setCapability(w.id, 'list', { state: 'refused', status: 405, at: 1 });
  store.setCapability(w.id, 'mint', { state: 'allowed', at: 2 });
  store.setCapability(w.id, 'list', { state: 'refused', status: 403, at: 3 });
  t.same(store.status(w.id).capabilities, {
    list: { state: 'refused', status: 403, at: 3 },
    mint: { state: 'allowed', at: 2 },
  });
  store.setStorageFacts(w.id, 'workspaces-eodhp', 'w/');
  t.match(store.getWorkspace('w'), { s3Bucket: 'workspaces-eodhp', s3Prefix: 'w/' });

  store.recordFailure(w.id, 'hub_down', '500', 100);
  store.recordFailure(w.id, 'hub_down', '500', 200);
  t.equal(store.status(w.id).failingSince, 100, 'the first failure of the run');
  store.recordRenewal(w.id, 300);
  t.equal(store.status(w.id).failingSince, null, 'cleared by a renewal');

  // The user asked for the pasted key to be revoked: it becomes retiring when our key replaces it.
  t.equal(store.activeApiKey(w.id)?.revokeWhenReplaced, true);
  const pending = store.insertPendingKey(w.id, { tokenId: 'm1', key: 'ours', expiresAt: 5 }, 'eodh-credd h 1 w x');
  store.promotePendingKey(w.id, pending.id);
  t.same(
    store
      .apiKeys(w.id)
      .map((k) => [k.state, k.key])
      .sort(),
    [
      ['active', 'ours'],
      ['retiring', 'pasted'],
    ],
  );
  t.same([...store.heldTokenIds()].sort(), ['m1', 'u1']);
});

/**
 * Re-sealing under a new master key (src/store/rekey.ts) and finishing an interrupted rekey when a
 * key is read (finishInterruptedRekey in src/store/master-key.ts). The CLI around them, with real
 * crashes, is tested in test/cli/rekey.test.ts.
 */

import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { systemClock } from '../../src/core/types.js';
import { openDatabase } from '../../src/store/database.js';
import {
  createMasterKeyFile,
  finishInterruptedRekey,
  generateMasterKey,
  pendingKeyFile,
  readMasterKey,
} from '../../src/store/master-key.js';
import { compactDatabase, resealDatabase, sealedColumns } from '../../src/store/rekey.js';
import { keyIdOf, MASTER_KEY_BYTES, SealError, type SealingKey, sealingKey } from '../../src/store/seal.js';
import { Store } from '../../src/store/store.js';
import { rawDb } from '../helpers/raw-db.js';

const newKey = () => sealingKey(randomBytes(MASTER_KEY_BYTES));

function populated(t: { testdir(): string }, key: SealingKey) {
  const file = join(t.testdir(), 'data', 'credd.db');
  const store = new Store(openDatabase({ file, key, create: true }), key, systemClock);
  for (const name of ['alpha', 'beta']) {
    const ws = store.addWorkspace({
      name,
      hubUrl: 'https://hub.example',
      region: 'eu-west-2',
      clientTokenId: `ct-${name}`,
      clientTokenHash: createHash('sha256').update(name).digest(),
      apiKey: { tokenId: `tok-${name}`, key: `API-KEY-${name}`, expiresAt: null },
      s3: {
        accessKeyId: `ASIA${name}`,
        secretAccessKey: `S3-SECRET-${name}`,
        sessionToken: `S3-SESSION-${name}`,
        issuedAt: 1,
        expiresAt: 2,
      },
    });
    store.insertApiKey(
      ws.id,
      'pending',
      { tokenId: `tok2-${name}`, key: `PENDING-KEY-${name}`, expiresAt: null },
      null,
    );
  }
  return { file, store };
}

const envelopes = (store: Store): string[] => [
  ...(rawDb(store).prepare('SELECT sealed_key FROM api_keys').pluck().all() as string[]),
  ...(rawDb(store).prepare('SELECT sealed_secret FROM s3_credentials').pluck().all() as string[]),
  ...(rawDb(store).prepare('SELECT sealed_session_token FROM s3_credentials').pluck().all() as string[]),
  rawDb(store).prepare(`SELECT value FROM meta WHERE key = 'key_check'`).pluck().get() as string,
];

t.test('sealedColumns finds every sealed column from the schema', async (t) => {
  const key = newKey();
  const { store } = populated(t, key);
  t.teardown(() => store.close());
  t.same(
    sealedColumns(rawDb(store)).map((c) => `${c.table}.${c.column}:${c.primaryKey}`),
    [
      'api_keys.sealed_key:id',
      's3_credentials.sealed_secret:workspace_id',
      's3_credentials.sealed_session_token:workspace_id',
    ],
  );
});

t.test('resealDatabase moves every value and the key check to the new key', async (t) => {
  const oldKey = newKey();
  const next = newKey();
  const { file, store } = populated(t, oldKey);
  const before = store.listWorkspaces().map((w) => [store.apiKeys(w.id).map((k) => k.key), store.loadS3(w.id)]);
  const result = resealDatabase(rawDb(store), oldKey, next);
  t.equal(result.values, 8, '2 workspaces × (2 API keys + secret + session token)');
  t.same(new Set(envelopes(store).map(keyIdOf)), new Set([next.id]), 'every envelope names the new key');
  compactDatabase(rawDb(store));
  store.close();

  t.throws(
    () => openDatabase({ file, key: oldKey }),
    { name: 'StoreError', message: /does not match/ },
    'the old key opens nothing',
  );
  const reopened = new Store(openDatabase({ file, key: next }), next, systemClock);
  t.teardown(() => reopened.close());
  const after = reopened.listWorkspaces().map((w) => [reopened.apiKeys(w.id).map((k) => k.key), reopened.loadS3(w.id)]);
  t.same(after, before, 'the same secrets come out');
  const bytes = Buffer.concat([file, `${file}-wal`].filter(existsSync).map((f) => readFileSync(f)));
  t.notOk(bytes.includes(Buffer.from(oldKey.id)), 'no envelope under the old key id left in the database or its WAL');
});

t.test('a value that does not open under the current key aborts everything', async (t) => {
  const oldKey = newKey();
  const { store } = populated(t, oldKey);
  t.teardown(() => store.close());
  const victim = rawDb(store).prepare(`SELECT id, sealed_key FROM api_keys WHERE state = 'pending' LIMIT 1`).get() as {
    id: string;
    sealed_key: string;
  };
  // Change the second-to-last character (inside the tag) to a different one.
  const changed = victim.sealed_key.at(-2) === 'A' ? 'B' : 'A';
  const flipped = victim.sealed_key.slice(0, -2) + changed + victim.sealed_key.slice(-1);
  t.not(flipped, victim.sealed_key, 'the envelope really changed');
  rawDb(store).prepare('UPDATE api_keys SET sealed_key = ? WHERE id = ?').run(flipped, victim.id);
  const before = envelopes(store);
  const err = t.throws(() => resealDatabase(rawDb(store), oldKey, newKey())) as unknown;
  t.ok(err instanceof SealError);
  t.match((err as Error).message, `api_keys.sealed_key of row ${victim.id}`, 'says where');
  t.same(envelopes(store), before, 'nothing changed');
});

t.test('a crash inside the transaction (before commit) changes nothing', async (t) => {
  const oldKey = newKey();
  const { file, store } = populated(t, oldKey);
  const before = envelopes(store);
  t.throws(() =>
    resealDatabase(rawDb(store), oldKey, newKey(), () => {
      throw new Error('power cut');
    }),
  );
  t.same(envelopes(store), before);
  store.close();
  t.doesNotThrow(() => openDatabase({ file, key: oldKey }).close(), 'the old key still opens it');
});

t.test('finishInterruptedRekey: decides from the database, never from the files alone', async (t) => {
  function setup() {
    const dir = join(t.testdir(), 'data');
    const keyFile = join(dir, 'master-key');
    const database = join(dir, 'credd.db');
    const oldText = generateMasterKey();
    const oldKey = sealingKey(Buffer.from(oldText, 'base64'));
    openDatabase({ file: database, key: oldKey, create: true }).close();
    writeFileSync(keyFile, oldText, { mode: 0o600 });
    const newText = generateMasterKey();
    return { dir, keyFile, database, oldText, oldKey, newText, newKey: sealingKey(Buffer.from(newText, 'base64')) };
  }

  t.test('no master-key.new: nothing to do', async (t) => {
    const s = setup();
    t.equal(finishInterruptedRekey(s.keyFile, s.database), false);
    t.equal(readFileSync(s.keyFile, 'utf8'), s.oldText);
  });

  t.test('crashed before the commit: the old key matches, master-key.new is left alone', async (t) => {
    const s = setup();
    writeFileSync(pendingKeyFile(s.keyFile), s.newText, { mode: 0o600 });
    t.equal(finishInterruptedRekey(s.keyFile, s.database), false);
    t.equal(readFileSync(s.keyFile, 'utf8'), s.oldText);
    t.ok(existsSync(pendingKeyFile(s.keyFile)), 'not removed: a rekey may be between its steps right now');
    t.same(readMasterKey(s.keyFile, {}).key, Buffer.from(s.oldText, 'base64'));
  });

  t.test('crashed after the commit: the rename is finished by whoever reads the key next', async (t) => {
    const s = setup();
    writeFileSync(pendingKeyFile(s.keyFile), s.newText, { mode: 0o600 });
    const db = openDatabase({ file: s.database, key: s.oldKey });
    resealDatabase(db, s.oldKey, s.newKey);
    db.close();
    const read = readMasterKey(s.keyFile, {});
    t.same(read.key, Buffer.from(s.newText, 'base64'), 'readMasterKey returns the new key');
    t.notOk(existsSync(pendingKeyFile(s.keyFile)), 'renamed into place');
    t.equal(readFileSync(s.keyFile, 'utf8'), s.newText);
    t.doesNotThrow(() => openDatabase({ file: s.database, key: s.newKey }).close());
  });

  t.test('a torn or widened master-key.new is never trusted', async (t) => {
    const s = setup();
    writeFileSync(pendingKeyFile(s.keyFile), s.newText.slice(0, 10), { mode: 0o600 });
    t.equal(finishInterruptedRekey(s.keyFile, s.database), false, 'torn');
    writeFileSync(pendingKeyFile(s.keyFile), s.newText, { mode: 0o600 });
    chmodSync(pendingKeyFile(s.keyFile), 0o644);
    const db = openDatabase({ file: s.database, key: s.oldKey });
    resealDatabase(db, s.oldKey, s.newKey);
    db.close();
    t.equal(finishInterruptedRekey(s.keyFile, s.database), false, 'readable by others');
    t.equal(readFileSync(s.keyFile, 'utf8'), s.oldText);
  });

  t.test('neither key matches: nothing is touched, the usual error follows', async (t) => {
    const s = setup();
    writeFileSync(pendingKeyFile(s.keyFile), s.newText, { mode: 0o600 });
    writeFileSync(s.keyFile, generateMasterKey(), { mode: 0o600 });
    t.equal(finishInterruptedRekey(s.keyFile, s.database), false);
    t.ok(existsSync(pendingKeyFile(s.keyFile)));
  });

  t.test('systemd credentials: the key file is not looked at', async (t) => {
    const s = setup();
    const creds = t.testdir({ 'master-key': s.oldText });
    writeFileSync(pendingKeyFile(s.keyFile), s.newText, { mode: 0o600 });
    const db = openDatabase({ file: s.database, key: s.oldKey });
    resealDatabase(db, s.oldKey, s.newKey);
    db.close();
    t.equal(readMasterKey(s.keyFile, { CREDENTIALS_DIRECTORY: creds }).origin, join(creds, 'master-key'));
    t.ok(existsSync(pendingKeyFile(s.keyFile)), 'untouched');
  });

  t.test('a fresh installation has no pending key', async (t) => {
    const dir = t.testdir();
    t.equal(createMasterKeyFile(join(dir, 'master-key')), true);
    t.equal(finishInterruptedRekey(join(dir, 'master-key'), join(dir, 'credd.db')), false);
  });
});

/**
 * `eodh-credd rekey` through the CLI's main() (and the built CLI where it must die by SIGKILL): the secrets move to a new key, the old key opens
 * nothing, and a crash (SIGKILL through EODH_CREDD_FAILPOINT) after any step leaves an
 * installation that works: before the commit with the old key, after it with the new one.
 */

import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import t from 'tap';
import { systemClock } from '../../src/core/types.js';
import { openDatabase } from '../../src/store/database.js';
import { pendingKeyFile, readMasterKey } from '../../src/store/master-key.js';
import { keyIdOf, sealingKey } from '../../src/store/seal.js';
import { Store } from '../../src/store/store.js';
import { createInstallation, getCredentials, type Installation } from '../security/fixtures/installation.js';

/**
 * The workspace's API key in use, read from the database: with rotation on, `workspace add` mints
 * this installation's own key at once (#11), so it is not the key the test pasted.
 */
function activeKey(inst: Installation, workspace: string): string {
  const key = sealingKey(readMasterKey(inst.paths.masterKey, {}).key);
  const store = new Store(openDatabase({ file: inst.paths.database, key, create: false }), key, systemClock);
  try {
    const record = store.getWorkspace(workspace);
    const active = record && store.activeApiKey(record.id);
    if (!active) throw new Error(`no active API key for ${workspace}`);
    return active.key;
  } finally {
    store.close();
  }
}

const keyText = (inst: Installation) => readFileSync(inst.paths.masterKey, 'utf8');
const keyId = (text: string) => sealingKey(Buffer.from(text, 'base64')).id;

/** The key id every sealed value in the database names (read without the key). */
function envelopeKeyIds(inst: Installation): Set<string | undefined> {
  const db = new Sqlite(inst.paths.database, { readonly: true });
  try {
    return new Set(
      [
        ...(db.prepare('SELECT sealed_key FROM api_keys').pluck().all() as string[]),
        ...(db.prepare('SELECT sealed_secret FROM s3_credentials').pluck().all() as string[]),
        ...(db.prepare('SELECT sealed_session_token FROM s3_credentials').pluck().all() as string[]),
        db.prepare(`SELECT value FROM meta WHERE key = 'key_check'`).pluck().get() as string,
      ].map(keyIdOf),
    );
  } finally {
    db.close();
  }
}

t.test('rekey: every secret under a new key, the old key opens nothing, the daemon serves as before', async (t) => {
  const inst = await createInstallation(t);
  const { clientToken } = await inst.addWorkspace('alpha');
  const apiKey = activeKey(inst, 'alpha');
  const oldText = keyText(inst);
  t.same(envelopeKeyIds(inst), new Set([keyId(oldText)]));

  const run = await inst.run(['rekey']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /Re-sealed 3 stored secrets under a new master key/);
  const newText = keyText(inst);
  t.not(newText, oldText, 'a new key');
  t.equal(statSync(inst.paths.masterKey).mode & 0o777, 0o600);
  t.notOk(existsSync(pendingKeyFile(inst.paths.masterKey)), 'no master-key.new left');
  t.same(envelopeKeyIds(inst), new Set([keyId(newText)]), 'every value names the new key');
  for (const text of [oldText, newText]) t.notMatch(run.stdout + run.stderr, text, 'no key on the terminal');
  const files = [inst.paths.database, `${inst.paths.database}-wal`].filter(existsSync).map((f) => readFileSync(f));
  t.notOk(
    Buffer.concat(files).includes(Buffer.from(keyId(oldText))),
    'no value sealed under the old key left in the files',
  );

  t.equal((await inst.run(['workspace', 'list'])).code, 0, 'the CLI opens the store');
  const daemon = await inst.serve();
  const served = await getCredentials(daemon.url, 'alpha', clientToken);
  t.equal(served.status, 200, 'the daemon serves the re-sealed credentials');
  const token = await inst.run(['token', 'alpha']);
  t.equal(token.stdout.trim(), apiKey, 'the API key came through intact');
  await daemon.stop();
});

t.test('refused while the daemon runs; nothing changes', async (t) => {
  const inst = await createInstallation(t);
  await inst.addWorkspace('alpha');
  const before = keyText(inst);
  const daemon = await inst.serve();
  const run = await inst.run(['rekey']);
  t.equal(run.code, 75, 'EX_TEMPFAIL');
  t.match(run.stderr, /is running .*stop it first.*Nothing was changed/);
  t.equal(keyText(inst), before);
  t.notOk(existsSync(pendingKeyFile(inst.paths.masterKey)));
  await daemon.stop();
});

t.test('refused when systemd provides the key', async (t) => {
  const inst = await createInstallation(t);
  const credentials = join(inst.home, 'credentials');
  mkdirSync(credentials, { mode: 0o700 });
  copyFileSync(inst.paths.masterKey, join(credentials, 'master-key'));
  chmodSync(join(credentials, 'master-key'), 0o400);
  const before = keyText(inst);
  const run = await inst.run(['rekey'], { env: { CREDENTIALS_DIRECTORY: credentials } });
  t.equal(run.code, 78);
  t.match(run.stderr, /systemd credential .*systemd-creds/);
  t.equal(keyText(inst), before);
  t.equal(readFileSync(join(credentials, 'master-key'), 'utf8'), before);
});

t.test('a damaged value stops rekey before anything changes', async (t) => {
  const inst = await createInstallation(t);
  await inst.addWorkspace('alpha');
  const db = new Sqlite(inst.paths.database);
  const row = db.prepare('SELECT workspace_id, sealed_secret FROM s3_credentials').get() as {
    workspace_id: string;
    sealed_secret: string;
  };
  const damaged = row.sealed_secret.slice(0, -1) + (row.sealed_secret.endsWith('A') ? 'B' : 'A');
  db.prepare('UPDATE s3_credentials SET sealed_secret = ?').run(damaged);
  db.close();
  const before = keyText(inst);
  const run = await inst.run(['rekey']);
  t.equal(run.code, 65, 'EX_DATAERR');
  t.match(run.stderr, /s3_credentials\.sealed_secret of row/);
  t.equal(keyText(inst), before);
  t.notOk(existsSync(pendingKeyFile(inst.paths.masterKey)), 'the unused new key is removed');
  t.same(envelopeKeyIds(inst), new Set([keyId(before)]));
});

for (const step of ['new-key-written', 'resealed'] as const) {
  t.test(`killed after "${step}" (before the commit): the old key keeps working`, async (t) => {
    const inst = await createInstallation(t);
    await inst.addWorkspace('alpha');
    const oldText = keyText(inst);
    const crashed = await inst.cli(['rekey'], { env: { EODH_CREDD_FAILPOINT: `rekey:${step}` } });
    t.equal(crashed.signal, 'SIGKILL', 'died at the failpoint');
    t.equal(keyText(inst), oldText, 'master-key untouched');
    t.ok(existsSync(pendingKeyFile(inst.paths.masterKey)), 'master-key.new was written');
    t.same(envelopeKeyIds(inst), new Set([keyId(oldText)]), 'the database is still under the old key');
    t.equal((await inst.run(['workspace', 'list'])).code, 0, 'the CLI works');
    t.equal(keyText(inst), oldText, 'and did not adopt the uncommitted key');
    const again = await inst.run(['rekey']);
    t.equal(again.code, 0, again.stderr);
    t.notOk(existsSync(pendingKeyFile(inst.paths.masterKey)), 'the stale master-key.new is gone');
    t.same(envelopeKeyIds(inst), new Set([keyId(keyText(inst))]));
  });
}

t.test('killed after the commit, before the rename: the next start finishes it', async (t) => {
  const inst = await createInstallation(t);
  const { clientToken } = await inst.addWorkspace('alpha');
  const apiKey = activeKey(inst, 'alpha');
  const oldText = keyText(inst);
  const crashed = await inst.cli(['rekey'], { env: { EODH_CREDD_FAILPOINT: 'rekey:committed' } });
  t.equal(crashed.signal, 'SIGKILL');
  const pendingText = readFileSync(pendingKeyFile(inst.paths.masterKey), 'utf8');
  t.equal(keyText(inst), oldText, 'master-key is still the old one');
  t.same(envelopeKeyIds(inst), new Set([keyId(pendingText)]), 'the database is under the new key');

  const daemon = await inst.serve();
  t.equal(keyText(inst), pendingText, 'the daemon renamed master-key.new into place');
  t.notOk(existsSync(pendingKeyFile(inst.paths.masterKey)));
  t.equal((await getCredentials(daemon.url, 'alpha', clientToken)).status, 200, 'and serves');
  t.equal((await inst.run(['token', 'alpha'])).stdout.trim(), apiKey);
  await daemon.stop();
});

t.test('killed after the commit: a CLI command finishes it just as well', async (t) => {
  const inst = await createInstallation(t);
  await inst.addWorkspace('alpha');
  const crashed = await inst.cli(['rekey'], { env: { EODH_CREDD_FAILPOINT: 'rekey:committed' } });
  t.equal(crashed.signal, 'SIGKILL');
  const pendingText = readFileSync(pendingKeyFile(inst.paths.masterKey), 'utf8');
  const list = await inst.run(['workspace', 'list']);
  t.equal(list.code, 0, list.stderr);
  t.equal(keyText(inst), pendingText);
  t.notOk(existsSync(pendingKeyFile(inst.paths.masterKey)));
});

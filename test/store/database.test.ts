import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import t from 'tap';
import { openDatabase, writeKeyCheck } from '../../src/store/database.js';
import { StoreError } from '../../src/store/errors.js';
import { loadMigrations, schemaVersion } from '../../src/store/migrate.js';
import { keyIdOf, MASTER_KEY_BYTES, sealingKey } from '../../src/store/seal.js';

const newKey = () => sealingKey(randomBytes(MASTER_KEY_BYTES));
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const mode = (path: string) => statSync(path).mode & 0o777;
const latest = loadMigrations().length;

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

/** A database created with `key`, closed cleanly (WAL checkpointed and removed). */
function createdDatabase(t: { testdir(): string }, key = newKey()) {
  const dir = join(t.testdir(), 'data');
  const file = join(dir, 'credd.db');
  const db = openDatabase({ file, key, create: true });
  db.prepare(`INSERT INTO meta (key, value) VALUES ('marker', 'x')`).run();
  db.close();
  return { dir, file, key };
}

t.test('create: schema, pragmas and key check', async (t) => {
  const key = newKey();
  const file = join(t.testdir(), 'data', 'credd.db');
  const db = openDatabase({ file, key, create: true });
  t.teardown(() => db.close());
  t.equal(schemaVersion(db), latest);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(db.pragma('foreign_keys', { simple: true }), 1);
  t.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL');
  t.equal(db.pragma('busy_timeout', { simple: true }), 5000);
  const check = db.prepare(`SELECT value FROM meta WHERE key = 'key_check'`).get() as { value: string } | undefined;
  t.ok(check, 'key check written');
  t.equal(keyIdOf(check!.value), key.id, 'sealed under this key');
  t.notMatch(check!.value, /master key check/, 'sealed, not clear');
});

t.test('file modes are owner-only even under a permissive umask', async (t) => {
  const previous = process.umask(0o022);
  t.teardown(() => {
    process.umask(previous);
  });
  const dir = join(t.testdir(), 'nested', 'data');
  const file = join(dir, 'credd.db');
  const db = openDatabase({ file, key: newKey(), create: true });
  t.teardown(() => db.close());
  db.prepare(`INSERT INTO meta (key, value) VALUES ('x', 'y')`).run();
  t.equal(process.umask(0o022), 0o022, 'umask restored after the open');
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    t.ok(existsSync(f), `${f} exists while open`);
    t.equal(mode(f), 0o600, `${f} is 0600`);
  }
  t.equal(mode(dir), 0o700, 'directory is 0700');
  t.equal(mode(join(dir, '..')), 0o700, 'created parents are 0700 too');
});

t.test('refuses a database file or directory others can reach', async (t) => {
  const { dir, file, key } = createdDatabase(t);
  chmodSync(file, 0o644);
  t.throws(() => openDatabase({ file, key }), { name: 'StoreError', kind: 'not_private', message: file });
  chmodSync(file, 0o600);
  chmodSync(dir, 0o755);
  t.throws(() => openDatabase({ file, key }), { name: 'StoreError', kind: 'not_private', message: dir });
  chmodSync(dir, 0o700);
  openDatabase({ file, key }).close();
});

t.test('a missing database is an error unless creating', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'credd.db');
  t.throws(() => openDatabase({ file, key: newKey() }), {
    name: 'StoreError',
    kind: 'missing',
    message: /No database at .*eodh-credd init/,
  });
  t.throws(() => openDatabase({ file, key: newKey(), readonly: true }), { name: 'StoreError', kind: 'missing' });
  t.notOk(existsSync(file), 'nothing created');
});

t.test('reopen with the right key keeps the data', async (t) => {
  const { file, key } = createdDatabase(t);
  const db = openDatabase({ file, key });
  t.teardown(() => db.close());
  t.same(db.prepare(`SELECT value FROM meta WHERE key = 'marker'`).get(), { value: 'x' });
  t.equal(db.prepare(`SELECT count(*) AS n FROM meta WHERE key = 'key_check'`).pluck().get(), 1);
  // create: true on an existing database is fine and does not reset it.
  const again = openDatabase({ file, key, create: true });
  t.same(again.prepare(`SELECT value FROM meta WHERE key = 'marker'`).get(), { value: 'x' });
  again.close();
});

t.test('wrong master key: one-sentence UserError, nothing written', async (t) => {
  const { file } = createdDatabase(t);
  t.notOk(existsSync(`${file}-wal`), 'clean close removed the WAL');
  const before = sha256(file);
  const wrong = newKey();
  for (const options of [{}, { create: true }, { readonly: true }]) {
    const err = thrown(() => openDatabase({ file, key: wrong, ...options }));
    t.ok(err instanceof StoreError, `StoreError (${JSON.stringify(options)})`);
    t.equal((err as StoreError).kind, 'wrong_key');
    const message = (err as Error).message;
    t.match(message, /master key/);
    t.match(message, file);
    t.match(message, /^[A-Z][^\n]*\.$/, 'one line ending in a full stop');
    t.notMatch(message, /[.;!?]\s+[A-Z]/, 'a single sentence');
    t.equal(sha256(file), before, 'database bytes unchanged');
    t.ok(!existsSync(`${file}-wal`) || statSync(`${file}-wal`).size === 0, 'no WAL content');
  }
});

t.test('wrong master key while another connection holds WAL content', async (t) => {
  const { file, key } = createdDatabase(t);
  const daemon = openDatabase({ file, key });
  t.teardown(() => daemon.close());
  daemon.pragma('wal_autocheckpoint = 0');
  daemon.prepare(`INSERT INTO meta (key, value) VALUES ('pending', 'in the wal')`).run();
  const db = sha256(file);
  const wal = sha256(`${file}-wal`);
  t.throws(() => openDatabase({ file, key: newKey() }), { kind: 'wrong_key', message: /master key/ });
  t.equal(sha256(file), db, 'database unchanged');
  t.equal(sha256(`${file}-wal`), wal, 'WAL unchanged');
});

t.test('the key is checked before any migration', async (t) => {
  const { file, key } = createdDatabase(t);
  const real = await import('../../src/store/migrate.js');
  const next = {
    version: latest + 1,
    name: `${String(latest + 1).padStart(3, '0')}_next.sql`,
    sql: 'CREATE TABLE next_thing (x);',
  };
  const { openDatabase: openWithNext } = await t.mockImport<typeof import('../../src/store/database.js')>(
    '../../src/store/database.js',
    {
      '../../src/store/migrate.js': { ...real, loadMigrations: () => [...real.loadMigrations(), next] },
    },
  );
  const before = sha256(file);
  t.throws(() => openWithNext({ file, key: newKey() }), {
    name: 'StoreError',
    kind: 'wrong_key',
    message: /master key/,
  });
  t.equal(sha256(file), before, 'pending migration not applied under a wrong key');
  const db = openWithNext({ file, key });
  t.equal(schemaVersion(db), latest + 1, 'applied under the right key');
  db.close();
});

t.test('a database newer than the code is refused and untouched', async (t) => {
  const { file, key } = createdDatabase(t);
  const raw = new Sqlite(file);
  raw.pragma(`user_version = ${latest + 5}`);
  raw.close();
  const before = sha256(file);
  for (const k of [key, newKey()]) {
    const err = thrown(() => openDatabase({ file, key: k }));
    t.ok(err instanceof StoreError);
    t.match(err, { kind: 'newer_schema', message: /schema version .* upgrade eodh-credd/ });
    t.equal(sha256(file), before);
  }
});

t.test('readonly', async (t) => {
  const { file, key } = createdDatabase(t);
  const db = openDatabase({ file, key, readonly: true });
  t.teardown(() => db.close());
  t.ok(db.readonly);
  t.same(db.prepare(`SELECT value FROM meta WHERE key = 'marker'`).get(), { value: 'x' });
  t.throws(() => db.prepare(`INSERT INTO meta (key, value) VALUES ('a', 'b')`).run(), { code: 'SQLITE_READONLY' });
});

t.test('writeKeyCheck re-seals the check under a new key', async (t) => {
  const { file, key } = createdDatabase(t);
  const next = newKey();
  const db = openDatabase({ file, key });
  db.transaction(() => writeKeyCheck(db, next))();
  db.close();
  t.throws(
    () => openDatabase({ file, key }),
    { name: 'StoreError', kind: 'wrong_key', message: /master key/ },
    'old key now refused',
  );
  openDatabase({ file, key: next }).close();
});

t.test('a database that lost its contents is refused by name, never taken as a new install (#13)', async (t) => {
  const cases: Array<[string, (file: string) => void, string, RegExp]> = [
    [
      'empty (0 bytes)',
      (file) => writeFileSync(file, ''),
      'empty',
      /is empty \(0 bytes, no tables\).*not taken as a new install/,
    ],
    ['garbage', (file) => writeFileSync(file, randomBytes(8192)), 'malformed', /malformed/],
    [
      'truncated',
      (file) => {
        const size = statSync(file).size;
        truncateSync(file, Math.floor(size / 2));
      },
      'malformed',
      /malformed/,
    ],
    [
      'foreign',
      (file) => {
        rmSync(file);
        const db = new Sqlite(file);
        db.exec('CREATE TABLE notes (body TEXT)');
        db.close();
        chmodSync(file, 0o600);
      },
      'foreign',
      /not an eodh-credd one/,
    ],
  ];
  for (const [name, damage, kind, message] of cases) {
    const { file, key } = createdDatabase(t);
    damage(file);
    const before = sha256(file);
    for (const options of [{}, { create: true }, { readonly: true }]) {
      const err = thrown(() => openDatabase({ file, key, ...options }));
      t.ok(err instanceof StoreError, `${name} ${JSON.stringify(options)}: a StoreError`);
      t.match(err, { kind, message }, `${name} ${JSON.stringify(options)}`);
      t.match((err as Error).message, file, 'names the file');
    }
    t.equal(sha256(file), before, `${name}: the file is untouched`);
  }
});

t.test('a read-only directory still opens read-only (status), and refuses writing as read_only', async (t) => {
  const { dir, file, key } = createdDatabase(t);
  // Outside the test directory, which tap removes before this test's teardown unmounts it.
  const mount = mkdtempSync(join(tmpdir(), 'credd-ro-'));
  t.teardown(() => rmSync(mount, { recursive: true, force: true }));
  const bound = spawnSync('mount', ['--bind', dir, mount]).status === 0;
  if (!bound) {
    t.comment('skipped: mount --bind is not allowed here (needs root)');
    return;
  }
  t.teardown(() => {
    spawnSync('umount', [mount]);
  });
  t.equal(spawnSync('mount', ['-o', 'remount,ro,bind', mount]).status, 0, 'remounted read-only');
  const roFile = join(mount, 'credd.db');
  const db = openDatabase({ file: roFile, key, readonly: true });
  t.equal(db.prepare(`SELECT value FROM meta WHERE key = 'marker'`).pluck().get(), 'x', 'reads');
  db.close();
  t.throws(() => openDatabase({ file: roFile, key }), { name: 'StoreError', kind: 'read_only' });
  t.ok(existsSync(file));
});

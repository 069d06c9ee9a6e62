import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import t from 'tap';
import { StoreError } from '../../src/store/errors.js';
import { assertNotNewer, findMigrationsDir, loadMigrations, migrate, schemaVersion } from '../../src/store/migrate.js';

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const schemaOf = (db: Sqlite.Database) =>
  db.prepare(`SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name`).all();
const tables = (db: Sqlite.Database) =>
  (
    db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as Array<{ name: string }>
  ).map((r) => r.name);

t.test('findMigrationsDir and loadMigrations find the shipped migrations', async (t) => {
  const dir = findMigrationsDir();
  t.match(dir, /[/\\]migrations$/);
  const shipped = readdirSync(dir).filter((f) => f.endsWith('.sql'));
  const migrations = loadMigrations();
  t.ok(migrations.length >= 1);
  t.equal(migrations.length, shipped.length, 'every .sql file is a migration');
  for (const [i, m] of migrations.entries()) t.equal(m.version, i + 1, m.name);
  t.equal(migrations[0]!.name, '001_initial.sql');
  t.match(migrations[0]!.sql, /CREATE TABLE workspaces/);
  t.throws(() => findMigrationsDir('/'), /migrations folder not found/);
});

t.test('loadMigrations: order, filtering and sequence', async (t) => {
  const dir = t.testdir({
    '002_second.sql': 'CREATE TABLE two (x);',
    '001_first.sql': 'CREATE TABLE one (x);',
    'README.md': 'not a migration',
    '003_Bad-Name.sql': 'ignored: name does not match',
    '01_short.sql': 'ignored',
  });
  const ms = loadMigrations(dir);
  t.same(
    ms.map((m) => [m.version, m.name]),
    [
      [1, '001_first.sql'],
      [2, '002_second.sql'],
    ],
  );
  t.throws(
    () => loadMigrations(t.testdir({ '001_a.sql': '', '003_c.sql': '' })),
    /003_c\.sql is out of sequence \(expected 2\)/,
  );
  t.throws(
    () => loadMigrations(t.testdir({ '001_a.sql': '', '001_b.sql': '' })),
    /out of sequence/,
    'duplicate version',
  );
  t.throws(() => loadMigrations(t.testdir({ '002_a.sql': '' })), /out of sequence \(expected 1\)/, 'missing 001');
});

t.test('from empty: applies all and sets user_version; re-run is a no-op', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'm.db');
  const db = new Sqlite(file);
  t.teardown(() => db.close());
  const all = loadMigrations();
  t.equal(schemaVersion(db), 0);
  t.equal(migrate(db, file), all.length, 'returns how many were applied');
  t.equal(schemaVersion(db), all.length);
  t.same(tables(db), ['api_keys', 'meta', 's3_credentials', 'workspace_access', 'workspace_status', 'workspaces']);

  const schema = schemaOf(db);
  const bytes = sha256(file);
  t.equal(migrate(db, file), 0, 'second run applies nothing');
  t.equal(schemaVersion(db), all.length);
  t.same(schemaOf(db), schema, 'schema unchanged');
  t.equal(sha256(file), bytes, 'file unchanged');
});

t.test('applies only the missing migrations', async (t) => {
  const dir = t.testdir({
    m: {
      '001_one.sql': 'CREATE TABLE one (x);',
      '002_two.sql': 'CREATE TABLE two (x);',
      '003_three.sql': 'CREATE TABLE three (x);',
    },
  });
  const all = loadMigrations(join(dir, 'm'));
  const db = new Sqlite(':memory:');
  t.teardown(() => db.close());
  t.equal(migrate(db, 'mem', all.slice(0, 1)), 1);
  t.equal(schemaVersion(db), 1);
  t.equal(migrate(db, 'mem', all), 2);
  t.equal(schemaVersion(db), 3);
  t.same(tables(db), ['one', 'three', 'two']);
});

t.test('a database newer than the code is refused and left untouched', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'newer.db');
  const latest = loadMigrations().length;
  {
    const db = new Sqlite(file);
    migrate(db, file);
    db.pragma(`user_version = ${latest + 1}`);
    db.close();
  }
  const before = sha256(file);
  const db = new Sqlite(file);
  t.teardown(() => db.close());
  let err: unknown;
  try {
    migrate(db, file);
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof StoreError, 'a StoreError');
  t.match(err, {
    kind: 'newer_schema',
    message: `${file}: the database is at schema version ${latest + 1} but this eodh-credd knows only up to ${latest}; upgrade eodh-credd.`,
  });
  t.throws(() => assertNotNewer(db, file, loadMigrations()), { name: 'StoreError', kind: 'newer_schema' });
  t.equal(schemaVersion(db), latest + 1, 'not downgraded');
  db.close();
  t.equal(sha256(file), before, 'file bytes unchanged');
});

t.test('a failing migration rolls back whole', async (t) => {
  const dir = t.testdir({
    m: {
      '001_one.sql': 'CREATE TABLE one (x INTEGER);\nINSERT INTO one VALUES (1);',
      '002_broken.sql':
        'CREATE TABLE two (x);\nINSERT INTO one VALUES (2);\nALTER TABLE one ADD COLUMN y;\nCREATE TABLE three (;',
      '003_never.sql': 'CREATE TABLE four (x);',
    },
  });
  const file = join(dir, 'broken.db');
  const db = new Sqlite(file);
  t.teardown(() => db.close());
  const migrations = loadMigrations(join(dir, 'm'));
  t.throws(() => migrate(db, file, migrations), { code: 'SQLITE_ERROR' });
  t.equal(schemaVersion(db), 1, 'user_version stays at the last whole migration');
  t.same(tables(db), ['one'], 'no partial tables from 002, nothing from 003');
  t.same(db.prepare('SELECT * FROM one').all(), [{ x: 1 }], 'no partial rows or columns from 002');
  t.notOk(db.inTransaction, 'no transaction left open');

  // Reopening from disk shows the same whole version.
  db.close();
  const again = new Sqlite(file);
  t.teardown(() => again.close());
  t.equal(schemaVersion(again), 1);
  t.same(tables(again), ['one']);

  // Once 002 is fixed, migration resumes where it stopped.
  const fixed = migrations.map((m) => (m.version === 2 ? { ...m, sql: 'CREATE TABLE two (x);' } : m));
  t.equal(migrate(again, file, fixed), 2);
  t.equal(schemaVersion(again), 3);
  t.same(tables(again), ['four', 'one', 'two']);
});

t.test('006 on a version-5 database: workspaces kept, grants go with their workspace', async (t) => {
  const file = join(t.testdir({}), 'v5.db');
  const db = new Sqlite(file);
  t.teardown(() => db.close());
  const all = loadMigrations();
  migrate(db, file, all.slice(0, 5));
  t.equal(schemaVersion(db), 5);
  db.prepare(
    `INSERT INTO workspaces (id, name, hub_url, region, client_token_id, client_token_hash, created_at)
     VALUES ('w1', 'ws', 'https://hub.example', 'eu-west-2', 'ct', x'00', 1)`,
  ).run();
  t.equal(migrate(db, file, all.slice(0, 6)), 1);
  t.equal(schemaVersion(db), 6);
  t.equal(db.prepare('SELECT name FROM workspaces').pluck().get(), 'ws', 'the workspace is kept');
  t.equal(db.prepare('SELECT count(*) FROM workspace_access').pluck().get(), 0, 'nobody else allowed yet');
  db.pragma('foreign_keys = ON');
  const grant = db.prepare(
    `INSERT INTO workspace_access (workspace_id, kind, unix_id, name, granted_at) VALUES (?, ?, ?, ?, 1)`,
  );
  grant.run('w1', 'user', 1001, 'alice');
  grant.run('w1', 'group', 1001, null);
  t.throws(() => grant.run('w1', 'user', 1001, 'again'), /UNIQUE/, 'once per workspace, kind and id');
  t.throws(() => grant.run('w1', 'role', 1, null), /CHECK/, 'users and groups only');
  t.throws(() => grant.run('w1', 'user', -1, null), /CHECK/, 'no negative ids');
  t.throws(() => grant.run('nope', 'user', 1, null), /FOREIGN KEY/, 'only for a workspace that exists');
  db.prepare('DELETE FROM workspaces').run();
  t.equal(db.prepare('SELECT count(*) FROM workspace_access').pluck().get(), 0, 'removed with the workspace');
});

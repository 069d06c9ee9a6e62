/**
 * Opening the database: owner-only file, WAL, foreign keys, a busy timeout for the CLI and the
 * daemon sharing it, migrations, and the master-key check. Order matters: the key is checked
 * before any migration or write, so a wrong key leaves the file exactly as it was.
 */

import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Sqlite, { type Database } from 'better-sqlite3';
import { asStoreError, StoreError } from './errors.js';
import { assertPrivate, ensurePrivateDir } from './files.js';
import { assertNotNewer, loadMigrations, migrate, schemaVersion } from './migrate.js';
import { cellAad, open, SealError, type SealingKey, seal } from './seal.js';

const KEY_CHECK_PLAINTEXT = 'eodh-credd master key check';
const KEY_CHECK_AAD = cellAad('meta', 'value', 'key_check');

export interface OpenOptions {
  readonly file: string;
  readonly key: SealingKey;
  /** Create the database if missing (init); otherwise a missing file is an error. */
  readonly create?: boolean;
  readonly readonly?: boolean;
}

export function openDatabase(options: OpenOptions): Database {
  const { file, key } = options;
  const exists = existsSync(file);
  if (!exists && !options.create) {
    throw new StoreError('missing', `No database at ${file}: run "eodh-credd init" first.`);
  }
  // A read-only open must work in a read-only directory: check it, create nothing.
  if (options.readonly) assertPrivate(dirname(file), 'directory', 700);
  else ensurePrivateDir(dirname(file));
  // The journal files hold the same secrets as the database: a wider one is refused like it.
  for (const journal of [`${file}-wal`, `${file}-shm`]) if (existsSync(journal)) assertPrivate(journal, 'file', 600);
  // SQLite creates the file (and its -wal/-shm siblings, which inherit the file's mode) with the
  // process umask; tighten the umask around the open so no secret-bearing file is ever wider.
  const previousUmask = process.umask(0o077);
  let db: Database;
  try {
    db = options.readonly
      ? openForReading(file)
      : new Sqlite(file, { readonly: false, fileMustExist: !options.create });
  } catch (err) {
    throw openFailure(err, file);
  } finally {
    process.umask(previousUmask);
  }
  try {
    assertPrivate(file, 'file', 600);
    db.pragma('busy_timeout = 5000');
    const migrations = loadMigrations();
    assertOurs(db, file, exists);
    assertNotNewer(db, file, migrations);
    if (schemaVersion(db) > 0) verifyKey(db, key, file);
    assertSound(db, file);
    if (options.readonly) return db;
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    // The key check goes in with the schema, in one transaction: a database never exists in a
    // state where any key would be accepted and recorded.
    db.transaction(() => {
      migrate(db, file, migrations);
      db.prepare(`INSERT OR IGNORE INTO meta (key, value) VALUES ('key_check', ?)`).run(
        seal(key, KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD),
      );
    }).immediate();
    return db;
  } catch (err) {
    db.close();
    throw openFailure(err, file);
  }
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** A failure to open or set up the database; in a directory that cannot be written, say so. */
function openFailure(err: unknown, file: string): unknown {
  if (err instanceof StoreError || writable(dirname(file))) return asStoreError(err, file);
  return new StoreError(
    'read_only',
    `${file}: its directory cannot be written (read-only file system or no permission), so the database cannot be opened for writing; commands that only read (status) still work.`,
    { cause: err },
  );
}

/**
 * Open read-only. A WAL database needs its -shm file, which SQLite cannot create in a read-only
 * directory: there, when no WAL is pending (a cleanly closed database), read a private in-memory
 * copy instead, marked as a rollback-journal database (header bytes 18-19) so SQLite opens it
 * without the -shm.
 */
function openForReading(file: string): Database {
  try {
    const db = new Sqlite(file, { readonly: true, fileMustExist: true });
    try {
      // SQLite opens lazily: the -shm is needed (and found missing) at the first read.
      db.prepare('SELECT count(*) FROM sqlite_schema').get();
    } catch (err) {
      db.close();
      throw err;
    }
    return db;
  } catch (err) {
    const wal = `${file}-wal`;
    const walPending = existsSync(wal) && statSync(wal).size > 0;
    if ((err as { code?: unknown }).code !== 'SQLITE_CANTOPEN' || writable(dirname(file)) || walPending) throw err;
    const image = readFileSync(file);
    if (image.length >= 20) {
      image[18] = 1;
      image[19] = 1;
    }
    return new Sqlite(image, { readonly: true });
  }
}

/**
 * An existing file must already be an eodh-credd database. One with no schema at all (0 bytes, or
 * truncated to nothing) means the installation's state was lost: taking it as a new install would
 * forget every workspace while their API keys stay live on the hub (#13), so it is refused.
 */
function assertOurs(db: Database, file: string, existed: boolean): void {
  const tables = db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table'`).pluck().all() as string[];
  if (schemaVersion(db) === 0) {
    if (tables.length > 0) {
      throw new StoreError(
        'foreign',
        `${file} is a SQLite database but not an eodh-credd one (it has tables ${tables.slice(0, 3).join(', ')} and no eodh-credd schema); nothing was changed. Point storage.data_dir elsewhere, or restore a backup with "eodh-credd restore FILE".`,
      );
    }
    if (existed) {
      throw new StoreError(
        'empty',
        `${file} is empty (${sizeOf(file)} bytes, no tables), but this installation already has it: the database was lost or truncated and is not taken as a new install. Restore a backup with "eodh-credd restore FILE" (the daemon keeps its last three in backups/ next to it), or, to start over, remove the file and run "eodh-credd init".`,
      );
    }
    return;
  }
  if (!tables.includes('meta') || !tables.includes('workspaces')) {
    throw new StoreError(
      'foreign',
      `${file} is not an eodh-credd database (schema version ${schemaVersion(db)} but no eodh-credd tables); nothing was changed.`,
    );
  }
}

/** SQLite's quick check: a truncated or damaged file is named as such, not met later as an odd failure. */
function assertSound(db: Database, file: string): void {
  const found = (db.pragma('quick_check(3)') as Array<{ quick_check: string }>).map((r) => r.quick_check);
  if (found.length === 1 && found[0] === 'ok') return;
  throw new StoreError(
    'malformed',
    `${file} is malformed (quick_check: ${found.join('; ')}); stop eodh-credd, keep a copy of it, and restore a backup with "eodh-credd restore FILE".`,
  );
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Whether the database's key check opens under this key (true when it has none yet). */
function keyCheckMatches(db: Database, key: SealingKey): boolean {
  const row = db.prepare(`SELECT value FROM meta WHERE key = 'key_check'`).get() as { value: string } | undefined;
  if (!row) return true;
  try {
    return open(key, row.value, KEY_CHECK_AAD) === KEY_CHECK_PLAINTEXT;
  } catch (err) {
    if (!(err instanceof SealError)) throw err;
    return false;
  }
}

/**
 * Whether an existing, initialised database was sealed under this key, without migrating or
 * writing anything (used to finish an interrupted rekey, see master-key.ts).
 */
export function databaseKeyMatches(file: string, key: SealingKey): boolean {
  const previousUmask = process.umask(0o077);
  let db: Database;
  try {
    db = new Sqlite(file, { fileMustExist: true, timeout: 5000 });
  } finally {
    process.umask(previousUmask);
  }
  try {
    return schemaVersion(db) > 0 && keyCheckMatches(db, key);
  } finally {
    db.close();
  }
}

function verifyKey(db: Database, key: SealingKey, file: string): void {
  if (keyCheckMatches(db, key)) return;
  throw new StoreError(
    'wrong_key',
    `The master key does not match the database ${file}; nothing was changed (check the key file or CREDENTIALS_DIRECTORY).`,
  );
}

/** Re-seal the key check under a new key (used by rekey, inside its transaction). */
export function writeKeyCheck(db: Database, key: SealingKey): void {
  db.prepare(`UPDATE meta SET value = ? WHERE key = 'key_check'`).run(seal(key, KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD));
}

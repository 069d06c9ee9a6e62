/**
 * Backups of the database: consistent copies taken online with SQLite's backup API (the daemon may
 * be writing meanwhile), still sealed (every secret in them opens only with the master key), 0600,
 * written to a temporary file and renamed into place, so a backup file is always whole. Restoring
 * swaps a verified copy in while the daemon is stopped and keeps the previous database aside.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Database } from 'better-sqlite3';
import type { DataPaths } from '../config/paths.js';
import { openDatabase } from './database.js';
import { asStoreError, StoreError } from './errors.js';
import { ensurePrivateDir, syncDirectory } from './files.js';
import { acquireProcessLock } from './lock.js';
import type { SealingKey } from './seal.js';

/** How many automatic backups the daemon keeps (#13). */
export const KEEP_BACKUPS = 3;

function fsyncFile(file: string): void {
  const fd = openSync(file, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function tempBeside(file: string): string {
  return join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Write a consistent copy of `db` to `dest` (0600, atomically replacing any file there). */
export async function backupDatabase(db: Database, dest: string): Promise<void> {
  const temp = tempBeside(dest);
  const previousUmask = process.umask(0o077);
  try {
    await db.backup(temp);
    chmodSync(temp, 0o600);
    fsyncFile(temp);
    renameSync(temp, dest);
    syncDirectory(dirname(dest));
  } catch (err) {
    rmSync(temp, { force: true });
    throw asStoreError(err, dest);
  } finally {
    process.umask(previousUmask);
  }
}

export function backupsDir(paths: DataPaths): string {
  return join(paths.dataDir, 'backups');
}

/** The automatic backups, oldest first. */
export function listBackups(paths: DataPaths): string[] {
  const dir = backupsDir(paths);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => /^credd-\d{8}T\d{9}Z\.db$/.test(name))
    .sort()
    .map((name) => join(dir, name));
}

/** Take an automatic backup into backups/ and drop all but the newest KEEP_BACKUPS. Returns its path. */
export async function takeRotatingBackup(db: Database, paths: DataPaths, now: number): Promise<string> {
  const dir = backupsDir(paths);
  ensurePrivateDir(dir);
  const stamp = new Date(now).toISOString().replace(/[-:.]/g, '');
  const dest = join(dir, `credd-${stamp}.db`);
  // Two backups in one millisecond: the later one wins the name, which is the newer state anyway.
  if (existsSync(dest)) rmSync(dest);
  await backupDatabase(db, dest);
  const all = listBackups(paths);
  for (const old of all.slice(0, Math.max(0, all.length - KEEP_BACKUPS))) rmSync(old, { force: true });
  return dest;
}

export interface RestoreResult {
  /** Where the database that was replaced now is (undefined when there was none). */
  readonly previous: string | undefined;
  readonly workspaces: number;
}

/**
 * Replace the database with `source`. The daemon must be stopped (the data directory's lock is
 * taken for the whole swap). The copy is verified first (it must be an eodh-credd database sealed
 * under this master key, sound by quick_check; an older schema is migrated), so a wrong file
 * changes nothing. The replaced database and its WAL are renamed aside, never deleted.
 */
export function restoreDatabase(paths: DataPaths, source: string, key: SealingKey, now: number): RestoreResult {
  if (!existsSync(source)) throw new StoreError('missing', `No backup at ${source}.`);
  let lock: ReturnType<typeof acquireProcessLock>;
  try {
    lock = acquireProcessLock(paths.lock);
  } catch (err) {
    if (err instanceof StoreError && err.kind === 'locked') {
      throw new StoreError(
        'locked',
        `eodh-credd is running from ${paths.dataDir}; stop it first (systemctl --user stop eodh-credd), run "eodh-credd restore" again, then start it. Nothing was changed.`,
      );
    }
    throw err;
  }
  const temp = tempBeside(paths.database);
  try {
    const previousUmask = process.umask(0o077);
    try {
      copyFileSync(source, temp);
      chmodSync(temp, 0o600);
    } catch (err) {
      throw asStoreError(err, temp);
    } finally {
      process.umask(previousUmask);
    }
    let workspaces: number;
    try {
      const db = openDatabase({ file: temp, key });
      try {
        workspaces = db.prepare('SELECT count(*) FROM workspaces').pluck().get() as number;
      } finally {
        db.close();
      }
    } catch (err) {
      if (err instanceof StoreError) {
        throw new StoreError(err.kind, `Cannot restore ${source}: ${err.message.replaceAll(temp, source)}`, {
          cause: err,
        });
      }
      throw err;
    }
    fsyncFile(temp);
    let previous: string | undefined;
    if (existsSync(paths.database)) {
      previous = `${paths.database}.before-restore-${new Date(now).toISOString().replace(/[-:.]/g, '')}`;
      // The WAL moves with its database: after a crash it may hold committed changes.
      for (const suffix of ['-wal', '-shm', '']) {
        if (existsSync(paths.database + suffix)) renameSync(paths.database + suffix, previous + suffix);
      }
    }
    renameSync(temp, paths.database);
    syncDirectory(dirname(paths.database));
    return { previous, workspaces };
  } finally {
    rmSync(temp, { force: true });
    for (const suffix of ['-wal', '-shm']) rmSync(temp + suffix, { force: true });
    lock.release();
  }
}

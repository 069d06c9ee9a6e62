/**
 * One daemon per data directory. The lock is an exclusive SQLite transaction on a small lock
 * file: the operating system releases it when the process dies, however it dies, so a crash never
 * leaves a stale lock behind (unlike a pid file).
 */
import Sqlite from 'better-sqlite3';
import { StoreError } from './errors.js';

export interface ProcessLock {
  release(): void;
}

export function acquireProcessLock(file: string): ProcessLock {
  const previousUmask = process.umask(0o077);
  let db: Sqlite.Database;
  try {
    db = new Sqlite(file, { timeout: 0 });
  } finally {
    process.umask(previousUmask);
  }
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') {
      throw new StoreError(
        'locked',
        `Another eodh-credd is already serving from ${file.replace(/\/[^/]+$/, '')}; stop it first (systemctl --user stop eodh-credd).`,
      );
    }
    throw err;
  }
  return {
    release: () => {
      if (db.open) db.close();
    },
  };
}

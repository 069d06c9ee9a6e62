/**
 * What can go wrong with the files eodh-credd keeps, as one typed error. The store throws only
 * this (never the CLI's UserError); the CLI maps each kind to an exit code in one place
 * (src/cli/exit-code.ts) and the daemon logs it. Messages name the file and say what to do.
 */
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';

export type StoreErrorKind =
  /** No database or no master key where one is expected. */
  | 'missing'
  /** The master key does not open this database. */
  | 'wrong_key'
  /** A master key file that is not one. */
  | 'bad_key_file'
  /** Group/other can reach the file, or another user owns it. */
  | 'not_private'
  /** Written by a newer eodh-credd. */
  | 'newer_schema'
  /** Another process holds the data directory's lock. */
  | 'locked'
  /** Empty (0 bytes, no schema) where this installation already has state: lost or truncated. */
  | 'empty'
  /** A SQLite file that is not an eodh-credd database. */
  | 'foreign'
  /** Not a database, or damaged (SQLITE_CORRUPT, SQLITE_NOTADB, a failed quick_check). */
  | 'malformed'
  /** SQLITE_FULL / ENOSPC / EDQUOT. */
  | 'disk_full'
  /** The file or its directory is on a read-only file system. */
  | 'read_only'
  /** Permission denied. */
  | 'no_access'
  /** Any other input/output failure. */
  | 'io';

export class StoreError extends Error {
  constructor(
    readonly kind: StoreErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

const SQLITE_KINDS: Array<[RegExp, StoreErrorKind]> = [
  [/^SQLITE_FULL/, 'disk_full'],
  [/^SQLITE_(CORRUPT|NOTADB)/, 'malformed'],
  [/^SQLITE_READONLY/, 'read_only'],
  [/^SQLITE_(IOERR|CANTOPEN)/, 'io'],
];

const ERRNO_KINDS: Record<string, StoreErrorKind> = {
  ENOSPC: 'disk_full',
  EDQUOT: 'disk_full',
  EROFS: 'read_only',
  ENOENT: 'missing',
  EACCES: 'no_access',
  EPERM: 'no_access',
  EIO: 'io',
};

/** The storage kind of a SQLite or file-system error, or undefined when it is not one. */
export function storageKind(err: unknown): StoreErrorKind | undefined {
  if (err instanceof StoreError) return err.kind;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  for (const [pattern, kind] of SQLITE_KINDS) if (pattern.test(code)) return kind;
  return ERRNO_KINDS[code];
}

const WHAT: Record<StoreErrorKind, string> = {
  missing: 'is missing',
  wrong_key: 'does not open under this master key',
  bad_key_file: 'is not a master key',
  not_private: 'is not private',
  newer_schema: 'is newer than this eodh-credd',
  locked: 'is in use',
  empty: 'is empty',
  foreign: 'is not an eodh-credd database',
  malformed: 'is malformed (not a database, or damaged)',
  disk_full: 'cannot be written: the disk is full',
  read_only: 'cannot be written: read-only file system',
  no_access: 'cannot be accessed: permission denied',
  io: 'cannot be read or written (input/output error)',
};

/**
 * A storage failure as a StoreError naming `file`; anything else (a bug) is returned unchanged.
 * SQLite's own text is kept at the end, since it says which operation failed.
 */
export function asStoreError(err: unknown, file: string): unknown {
  if (err instanceof StoreError) return err;
  let kind = storageKind(err);
  if (!kind) return err;
  // SQLite reports a write that ran out of space in its WAL as a plain I/O error.
  if (kind === 'io' && noSpaceLeft(file)) kind = 'disk_full';
  const detail = err instanceof Error ? ` (${err.message})` : '';
  const hint =
    kind === 'malformed'
      ? `; stop eodh-credd, keep a copy of it, and restore a backup with "eodh-credd restore FILE"`
      : kind === 'disk_full'
        ? '; free some space, nothing was lost'
        : '';
  return new StoreError(kind, `${file} ${WHAT[kind]}${detail}${hint}.`, { cause: err });
}

function noSpaceLeft(file: string): boolean {
  try {
    const fs = statfsSync(dirname(file));
    return fs.bavail * fs.bsize < 64 * 1024;
  } catch {
    return false;
  }
}

/** Run `fn`, turning a storage failure into a StoreError naming `file`. */
export function guardStorage<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw asStoreError(err, file);
  }
}

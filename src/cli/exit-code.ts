/**
 * Storage failures (StoreError, or a bare disk-full/read-only error from a file write) as the
 * one sentence and exit code the CLI reports: the store names what went wrong, this maps it to
 * sysexits once, for every command.
 */
import { EXIT } from '../core/errors.js';
import { asStoreError, StoreError, type StoreErrorKind } from '../store/errors.js';

const EXIT_CODES: Record<StoreErrorKind, number> = {
  missing: EXIT.CONFIG,
  wrong_key: EXIT.CONFIG,
  bad_key_file: EXIT.CONFIG,
  newer_schema: EXIT.CONFIG,
  not_private: EXIT.NOPERM,
  no_access: EXIT.NOPERM,
  locked: EXIT.TEMPFAIL,
  empty: EXIT.BAD_DATABASE,
  foreign: EXIT.BAD_DATABASE,
  malformed: EXIT.BAD_DATABASE,
  disk_full: EXIT.IOERR,
  read_only: EXIT.CANTCREAT,
  io: EXIT.IOERR,
};

export function storeExitCode(kind: StoreErrorKind): number {
  return EXIT_CODES[kind];
}

/** The message and exit code of a storage failure, or undefined when `err` is not one. */
export function storageFailure(err: unknown): { message: string; exitCode: number } | undefined {
  const found = err instanceof StoreError ? err : asStoreError(err, errnoPath(err));
  if (!(found instanceof StoreError)) return undefined;
  // A bare errno error that is not about space or a read-only file system is left to the caller.
  if (!(err instanceof StoreError) && !['disk_full', 'read_only'].includes(found.kind)) return undefined;
  return { message: found.message, exitCode: storeExitCode(found.kind) };
}

function errnoPath(err: unknown): string {
  const path = (err as { path?: unknown } | null)?.path;
  return typeof path === 'string' ? path : 'a file in the data directory';
}

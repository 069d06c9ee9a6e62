/**
 * How the daemon learns that the CLI changed the database (workspace add/remove/set-key,
 * client-token rotate), without polling (#13): the CLI writes a small notification file in the
 * data directory after it commits, and the daemon watches the directory for it. A missed
 * notification costs little: the daemon also compares SQLite's data_version whenever a request
 * names a workspace or token it does not know, and at each safety sweep.
 */
import { type FSWatcher, watch } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DataPaths } from '../config/paths.js';
import { replaceSecretFile } from '../store/files.js';

/** The notification file's name, inside the data directory. */
export const CHANGE_NOTICE = 'changed';

export function changeNoticeFile(paths: DataPaths): string {
  return join(paths.dataDir, CHANGE_NOTICE);
}

/** Tell a running daemon that the database changed (best effort: the daemon also checks on its own). */
export function announceChange(paths: DataPaths): void {
  try {
    replaceSecretFile(changeNoticeFile(paths), String(Date.now()));
  } catch {
    // A read-only or full disk: the daemon's data_version checks still find the change.
  }
}

export interface ChangeWatch {
  /** Compare data_version now and apply a change if there is one; true when there was. */
  check(): boolean;
  close(): void;
}

export function watchForChanges(options: {
  readonly paths: DataPaths;
  readonly dataVersion: () => number;
  readonly apply: () => void;
  readonly logger: Logger;
}): ChangeWatch {
  let seen = options.dataVersion();
  const check = (): boolean => {
    const version = options.dataVersion();
    if (version === seen) return false;
    seen = version;
    options.apply();
    return true;
  };
  let watcher: FSWatcher | undefined;
  try {
    // The directory, not the file: the notice is replaced by rename, which a file watch would lose.
    watcher = watch(options.paths.dataDir, { persistent: false }, (_event, name) => {
      if (name === null || name === CHANGE_NOTICE) {
        try {
          check();
        } catch (err) {
          options.logger.error({ err }, 'applying a change from the CLI failed');
        }
      }
    });
    watcher.on('error', (err) => options.logger.warn({ err }, 'watching the data directory failed'));
  } catch (err) {
    options.logger.warn({ err }, 'cannot watch the data directory; CLI changes apply at the next sweep');
  }
  return {
    check,
    close: () => watcher?.close(),
  };
}

/** Opening the store from the CLI: in its own module so that commands which never touch the database do not load SQLite. */
import type { Config } from '../config/load.js';
import { systemClock } from '../core/types.js';
import { announceChange } from '../daemon/changes.js';
import { openDatabase } from '../store/database.js';
import { StoreError } from '../store/errors.js';
import { readMasterKey } from '../store/master-key.js';
import { sealingKey } from '../store/seal.js';
import { Store } from '../store/store.js';
import type { CliContext } from './context.js';

/** A store whose changes the running daemon hears of when it is closed (see daemon/changes.ts). */
export function openStore(config: Config, env: CliContext['env'], create = false, readonly = false): Store {
  const key = sealingKey(readMasterKey(config.paths.masterKey, env).key);
  return new Store(openDatabase({ file: config.paths.database, key, create, readonly }), key, systemClock, {
    onClosedAfterChanges: () => announceChange(config.paths),
  });
}

/** For commands that only read: on a read-only data directory they still work, read-only. */
export function openStoreForReading(config: Config, env: CliContext['env']): Store {
  try {
    return openStore(config, env);
  } catch (err) {
    if (err instanceof StoreError && err.kind === 'read_only') return openStore(config, env, false, true);
    throw err;
  }
}

/** Opening the store from the CLI: in its own module so that commands which never touch the database do not load SQLite. */
import type { Config } from '../config/load.js';
import { systemClock } from '../core/types.js';
import { openDatabase } from '../store/database.js';
import { readMasterKey } from '../store/master-key.js';
import { sealingKey } from '../store/seal.js';
import { Store } from '../store/store.js';
import type { CliContext } from './context.js';

export function openStore(config: Config, env: CliContext['env'], create = false): Store {
  const key = sealingKey(readMasterKey(config.paths.masterKey, env).key);
  return new Store(openDatabase({ file: config.paths.database, key, create }), key, systemClock);
}

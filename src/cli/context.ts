/** What every command gets: arguments, environment, streams, and helpers to reach config and store. */
import type { Readable, Writable } from 'node:stream';
import { type Config, loadConfig } from '../config/load.js';
import { systemClock } from '../core/types.js';
import { announceChange } from '../daemon/changes.js';
import { openDatabase } from '../store/database.js';
import { StoreError } from '../store/errors.js';
import { readMasterKey } from '../store/master-key.js';
import { sealingKey } from '../store/seal.js';
import { Store } from '../store/store.js';

export interface CliContext {
  readonly args: string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: Readable & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  /** --config, when given before or after the command. */
  readonly configFile: string | undefined;
}

export function configOf(ctx: CliContext): Config {
  return loadConfig({ explicitFile: ctx.configFile, env: ctx.env });
}

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

export function print(stream: Writable, text = ''): void {
  stream.write(`${text}\n`);
}

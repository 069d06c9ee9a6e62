/** `eodh-credd init`: owner-only directories, the master key, the database. Safe to run twice. */

import type { Config } from '../config/load.js';
import { ensureAdminToken } from '../store/client-tokens.js';
import { ensurePrivateDir } from '../store/files.js';
import { createMasterKeyFile, masterKeyLocation } from '../store/master-key.js';
import { type CliContext, configOf, print } from './context.js';
import { openStore } from './open-store.js';

export interface InitResult {
  readonly createdKey: boolean;
  readonly keyLocation: string;
}

export function initialise(config: Config, env: CliContext['env']): InitResult {
  const { paths } = config;
  ensurePrivateDir(paths.dataDir);
  ensurePrivateDir(paths.tokensDir);
  const location = masterKeyLocation(paths.masterKey, env);
  const createdKey = location === paths.masterKey ? createMasterKeyFile(paths.masterKey) : false;
  ensureAdminToken(paths);
  // Opening creates and migrates the database and checks the key against it; every other
  // command refuses a missing database, so a mistyped path never silently becomes a new one.
  openStore(config, env, true).close();
  return { createdKey, keyLocation: location };
}

export async function run(ctx: CliContext): Promise<number> {
  const config = configOf(ctx);
  const result = initialise(config, ctx.env);
  print(ctx.stdout, `Data directory: ${config.paths.dataDir}`);
  print(ctx.stdout, `Master key: ${result.keyLocation}${result.createdKey ? ' (created)' : ' (existing, kept)'}`);
  print(ctx.stdout, `Database: ${config.paths.database}`);
  print(
    ctx.stdout,
    'Next: printf %s "$KEY" | eodh-credd workspace add <workspace> --hub https://eodatahub.org.uk --token-id <token id>',
  );
  return 0;
}

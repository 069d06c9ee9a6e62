/**
 * A workspace's client token from its file, for the commands that ask the daemon (token,
 * credential-process). The database is opened only when the file is missing, to tell "no such
 * workspace (did you mean …?)" from a lost file.
 */
import { existsSync } from 'node:fs';
import type { Config } from '../config/load.js';
import { clientTokenFile } from '../config/paths.js';
import { EXIT, UserError } from '../core/errors.js';
import { readClientTokenFile } from '../store/client-tokens.js';
import type { CliContext } from './context.js';
import { configuredWorkspaces, unknownWorkspace } from './names.js';

export async function clientToken(config: Config, env: CliContext['env'], workspace: string): Promise<string> {
  if (!existsSync(clientTokenFile(config.paths, workspace))) {
    if (!existsSync(config.paths.dataDir))
      throw new UserError(`No data directory at ${config.paths.dataDir}: run "eodh-credd init" first.`, EXIT.CONFIG);
    const names = await configuredWorkspaces(config, env);
    if (!names.includes(workspace)) throw unknownWorkspace(workspace, names);
  }
  return readClientTokenFile(config.paths, workspace);
}

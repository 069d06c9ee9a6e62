/**
 * `eodh-credd client-token rotate <ws>`: give a workspace a new local client token. The new
 * token's digest replaces the old one in the database and the token file is replaced atomically,
 * inside one transaction: if the file cannot be written, the database keeps the old digest. The
 * running daemon sees the change within a second (it polls PRAGMA data_version) and from then on
 * refuses the old token. Clients that read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE pick up the new
 * one on their next fetch; the token itself is never printed.
 */
import type { Config } from '../config/load.js';
import { EXIT, UserError } from '../core/errors.js';
import { newClientToken, writeClientTokenFile } from '../store/client-tokens.js';
import { type CliContext, configOf, openStore, print } from './context.js';
import { assertWorkspaceName } from './workspace.js';

export interface RotatedClientToken {
  readonly file: string;
  readonly previousId: string;
  readonly id: string;
}

export function rotateClientToken(config: Config, env: CliContext['env'], workspace: string): RotatedClientToken {
  const store = openStore(config, env);
  try {
    const record = store.getWorkspace(workspace);
    if (!record) throw new UserError(`No workspace "${workspace}".`, EXIT.USAGE);
    const next = newClientToken();
    const file = store.transaction(() => {
      store.setClientToken(record.id, next.id, next.hash);
      return writeClientTokenFile(config.paths, workspace, next.token);
    });
    return { file, previousId: record.clientTokenId, id: next.id };
  } finally {
    store.close();
  }
}

export async function run(ctx: CliContext): Promise<number> {
  const [sub, name, ...rest] = ctx.args;
  if (sub !== 'rotate' || rest.length > 0)
    throw new UserError('Usage: eodh-credd client-token rotate <workspace>', EXIT.USAGE);
  const workspace = assertWorkspaceName(name);
  const rotated = rotateClientToken(configOf(ctx), ctx.env, workspace);
  print(
    ctx.stdout,
    `New client token for "${workspace}" (${rotated.previousId} -> ${rotated.id}) written to ${rotated.file}.`,
  );
  print(ctx.stdout, 'The old token stops working within a second. Clients that read the token file need nothing;');
  print(ctx.stdout, 'anything given the token by value (AWS_CONTAINER_AUTHORIZATION_TOKEN) must be given the new one.');
  return 0;
}

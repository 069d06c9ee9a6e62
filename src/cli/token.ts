/** `eodh-credd token <ws>`: the bare API key from the running daemon, for scripts and pyeodh. */

import { EXIT, UserError } from '../core/errors.js';
import { readClientTokenFile } from '../store/client-tokens.js';
import { type CliContext, configOf, print } from './context.js';
import { callDaemon, errorMessage } from './daemon-client.js';
import { assertWorkspaceName } from './workspace.js';

export async function run(ctx: CliContext): Promise<number> {
  const workspace = assertWorkspaceName(ctx.args[0]);
  const config = configOf(ctx);
  const answer = await callDaemon(config, `/v1/workspaces/${workspace}/token`, {
    token: readClientTokenFile(config.paths, workspace),
  });
  if (answer.status !== 200) throw new UserError(`The daemon refused: ${errorMessage(answer.body)}`, EXIT.UNAVAILABLE);
  print(ctx.stdout, String((answer.body as { token: string }).token));
  return 0;
}

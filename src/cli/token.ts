/** `eodh-credd token <ws>`: the bare API key from the running daemon, for scripts and pyeodh. */

import { EXIT, UserError } from '../core/errors.js';
import { type CliContext, configOf, print } from './context.js';
import { callDaemon, errorMessage } from './daemon-client.js';
import { assertWorkspaceName } from './names.js';
import { clientToken } from './workspace-token.js';

export async function run(ctx: CliContext): Promise<number> {
  const workspace = assertWorkspaceName(ctx.args[0]);
  const config = configOf(ctx);
  const answer = await callDaemon(config, `/v1/workspaces/${workspace}/token`, {
    token: await clientToken(config, ctx.env, workspace),
  });
  if (answer.status !== 200) throw new UserError(`The daemon refused: ${errorMessage(answer.body)}`, EXIT.UNAVAILABLE);
  print(ctx.stdout, String((answer.body as { token: string }).token));
  return 0;
}

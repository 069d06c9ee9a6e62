/** `eodh-credd refresh <ws>` and `eodh-credd rotate <ws>`: force a step now, through the daemon. */
import { EXIT, UserError } from '../core/errors.js';
import { type CliContext, configOf, print } from './context.js';
import { adminToken, callDaemon, errorMessage } from './daemon-client.js';
import { assertWorkspaceName } from './workspace.js';

export function command(action: 'refresh' | 'rotate') {
  return async (ctx: CliContext): Promise<number> => {
    const workspace = assertWorkspaceName(ctx.args[0]);
    const config = configOf(ctx);
    const answer = await callDaemon(config, `/v1/admin/workspaces/${workspace}/${action}`, {
      method: 'POST',
      token: adminToken(config),
      timeoutMs: 60_000,
    });
    if (answer.status !== 200) throw new UserError(`${action} failed: ${errorMessage(answer.body)}`, EXIT.UNAVAILABLE);
    print(
      ctx.stdout,
      action === 'refresh' ? `S3 credentials of "${workspace}" renewed.` : `API key of "${workspace}" rotated.`,
    );
    return 0;
  };
}

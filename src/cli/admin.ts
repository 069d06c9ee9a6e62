/** `eodh-credd refresh <ws>` and `eodh-credd rotate <ws>`: force a step now, through the daemon. */
import { EXIT, UserError } from '../core/errors.js';
import { type CliContext, configOf, print } from './context.js';
import { adminToken, callDaemon, errorMessage } from './daemon-client.js';
import { assertWorkspaceName } from './names.js';
import { withProgress } from './progress.js';

export function command(action: 'refresh' | 'rotate') {
  return async (ctx: CliContext): Promise<number> => {
    const workspace = assertWorkspaceName(ctx.args[0]);
    const config = configOf(ctx);
    const timeoutMs = 60_000;
    const answer = await withProgress(
      ctx,
      action === 'refresh' ? `Renewing the S3 credentials of "${workspace}"` : `Rotating the API key of "${workspace}"`,
      timeoutMs,
      callDaemon(config, `/v1/admin/workspaces/${workspace}/${action}`, {
        method: 'POST',
        token: adminToken(config),
        timeoutMs,
      }),
    );
    if (answer.status !== 200) throw new UserError(`${action} failed: ${errorMessage(answer.body)}`, EXIT.UNAVAILABLE);
    print(
      ctx.stdout,
      action === 'refresh' ? `S3 credentials of "${workspace}" renewed.` : `API key of "${workspace}" rotated.`,
    );
    return 0;
  };
}

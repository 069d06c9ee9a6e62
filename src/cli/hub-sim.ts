/** `eodh-credd hub-sim`: the EODH hub simulator on its own. */
import { runHubSim } from '../hub-sim/cli.js';
import type { CliContext } from './context.js';

export async function run(ctx: CliContext): Promise<number> {
  await runHubSim(ctx.args);
  return 0;
}

/** `eodh-credd hub-sim`: the EODH hub simulator on its own. */
import { runHubSim } from '../hub-sim/cli.js';
import { type CliContext, stringOption } from './context.js';

export async function run(ctx: CliContext): Promise<number> {
  // The simulator parses its own flags (it also runs on its own): hand them back as given.
  const flags: Record<string, string> = {
    port: 'port',
    s3Lifetime: 's3-lifetime',
    dayMs: 'day-ms',
    stsEndpoint: 'sts-endpoint',
    roleArn: 'role-arn',
    stsRegion: 'sts-region',
  };
  const argv = Object.entries(flags).flatMap(([key, flag]) => {
    const value = stringOption(ctx, key);
    return value === undefined ? [] : [`--${flag}`, value];
  });
  await runHubSim(argv);
  return 0;
}

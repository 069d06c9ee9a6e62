/**
 * `eodh-credd demo` (and `npm run demo`): a hub simulator, an isolated data directory, the daemon,
 * and a workspace "demo" added the way a user would. Prints the same lines as `eodh-credd env
 * demo` would for that data directory, then runs until Ctrl-C and removes everything it made.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../config/load.js';
import { startDaemon } from '../daemon.js';
import { startHubSimulator } from '../hub-sim/app.js';
import { HubSimulatorClient } from '../hub-sim/client.js';
import { createLogger } from '../log.js';
import { type CliContext, print, stringOption } from './context.js';
import { envVariables, formatEnv } from './env.js';
import { initialise } from './init.js';
import { addWorkspace, DEFAULT_REGION } from './workspace.js';

const WORKSPACE = 'demo';

export async function run(ctx: CliContext): Promise<number> {
  const values = { port: stringOption(ctx, 'port') ?? '0', 's3-lifetime': stringOption(ctx, 's3Lifetime') ?? '3600' };
  const root = mkdtempSync(join(tmpdir(), 'eodh-credd-demo-'));
  const env = {
    HOME: ctx.env.HOME,
    XDG_CONFIG_HOME: join(root, 'config'),
    XDG_DATA_HOME: join(root, 'data'),
  };
  const sim = await startHubSimulator({ s3LifetimeSeconds: Number(values['s3-lifetime']) });
  let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
  const cleanup = async () => {
    await daemon?.stop();
    await sim.close();
    rmSync(root, { recursive: true, force: true });
  };
  try {
    const key = await new HubSimulatorClient(sim.url).createKey(WORKSPACE, { name: 'demo key', expiresDays: 30 });
    const config = parseConfig(
      `[server]\nport = ${Number(values.port)}\n[sts]\nverify = false\n[log]\nlevel = "warn"\n`,
      join(env.XDG_CONFIG_HOME, 'eodh-credd', 'config.toml'),
      env,
    );
    initialise(config, env);
    await addWorkspace(config, env, {
      name: WORKSPACE,
      hubUrl: sim.url,
      tokenId: key.id,
      region: DEFAULT_REGION,
      apiKey: key.token,
    });
    const logger = createLogger({ level: 'warn', format: 'auto' });
    daemon = await startDaemon({ config, env, logger });
    const tokenFile = join(config.paths.tokensDir, `${WORKSPACE}.token`);
    for (const line of formatEnv(envVariables(config, WORKSPACE, DEFAULT_REGION, { file: tokenFile }), 'sh', tokenFile))
      print(ctx.stdout, line);
    print(ctx.stderr, `# hub simulator at ${sim.url}; daemon at ${daemon.url}; data in ${root}`);
    print(ctx.stderr, '# In another shell, paste the lines above, then:');
    print(
      ctx.stderr,
      '#   curl -s -H "Authorization: $(cat "$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")" "$AWS_CONTAINER_CREDENTIALS_FULL_URI"',
    );
    print(ctx.stderr, '# Ctrl-C stops the demo and removes its files.');
  } catch (err) {
    await cleanup();
    throw err;
  }
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await cleanup();
  return 0;
}

/**
 * `eodh-credd env <ws> [--format sh|fish|json|dotenv|docker]`: the variables that point every AWS
 * client at the daemon. The token travels by file (re-read on every fetch by botocore, Go and JS),
 * so a client token rotation needs no new environment.
 */
import { parseArgs } from 'node:util';
import type { Config } from '../config/load.js';
import { clientTokenFile } from '../config/paths.js';
import { EXIT, UserError } from '../core/errors.js';
import { type CliContext, configOf, print } from './context.js';
import { daemonBaseUrl } from './daemon-client.js';
import { assertWorkspaceName, readWorkspace } from './workspace.js';

export const FORMATS = ['sh', 'fish', 'json', 'dotenv', 'docker'] as const;
export type EnvFormat = (typeof FORMATS)[number];

/** Where the token file is mounted inside a container by the docker format. */
const CONTAINER_TOKEN_PATH = '/run/eodh-credd/token';

export function credentialsUrl(baseUrl: string, workspace: string): string {
  return `${baseUrl}/v1/workspaces/${workspace}/credentials`;
}

export function envVariables(
  config: Config,
  workspace: string,
  region: string,
  tokenFile?: string,
  storage?: { readonly s3Bucket: string | null; readonly s3Prefix: string | null },
): Array<[string, string]> {
  const vars: Array<[string, string]> = [
    ['AWS_CONTAINER_CREDENTIALS_FULL_URI', credentialsUrl(daemonBaseUrl(config), workspace)],
    ['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', tokenFile ?? clientTokenFile(config.paths, workspace)],
    // JS v3 and the CLI read AWS_REGION; older botocore reads only AWS_DEFAULT_REGION.
    ['AWS_REGION', region],
    ['AWS_DEFAULT_REGION', region],
  ];
  // Where the workspace's files live, when the hub said (GET /api/workspaces/{ws}; best effort, #11).
  if (storage?.s3Bucket) vars.push(['EODH_S3_BUCKET', storage.s3Bucket]);
  if (storage?.s3Bucket && storage.s3Prefix !== null) vars.push(['EODH_S3_PREFIX', storage.s3Prefix]);
  return vars;
}

const shQuote = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replaceAll("'", `'\\''`)}'`);

export function formatEnv(vars: Array<[string, string]>, format: EnvFormat, tokenFile: string): string[] {
  switch (format) {
    case 'sh':
      return vars.map(([k, v]) => `export ${k}=${shQuote(v)}`);
    case 'fish':
      return vars.map(([k, v]) => `set -gx ${k} ${shQuote(v)};`);
    case 'dotenv':
      return vars.map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    case 'json':
      return [JSON.stringify(Object.fromEntries(vars), null, 2)];
    case 'docker': {
      // Host networking, so 127.0.0.1 inside the container is the host's loopback where we listen;
      // the token file goes in read-only and the variable names its path inside the container.
      const inside = vars.map(([k, v]): [string, string] =>
        k === 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE' ? [k, CONTAINER_TOKEN_PATH] : [k, v],
      );
      return [
        [
          '--network=host',
          `--volume=${shQuote(`${tokenFile}:${CONTAINER_TOKEN_PATH}:ro`)}`,
          ...inside.map(([k, v]) => `--env=${shQuote(`${k}=${v}`)}`),
        ].join(' '),
      ];
    }
  }
}

export async function run(ctx: CliContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args: ctx.args,
    allowPositionals: true,
    options: { format: { type: 'string', default: 'sh' } },
  });
  const workspace = assertWorkspaceName(positionals[0]);
  const format = values.format as EnvFormat;
  if (!FORMATS.includes(format)) throw new UserError(`--format must be one of ${FORMATS.join(', ')}.`, EXIT.USAGE);
  const config = configOf(ctx);
  const record = readWorkspace(config, ctx.env, workspace);
  const tokenFile = clientTokenFile(config.paths, workspace);
  for (const line of formatEnv(envVariables(config, workspace, record.region, tokenFile, record), format, tokenFile))
    print(ctx.stdout, line);
  return 0;
}

/**
 * `eodh-credd env <ws> [--format sh|fish|json|dotenv|docker] [--token value|file]`: the variables
 * that point every AWS client at the daemon.
 *
 * By default the client token travels by value, AWS_CONTAINER_AUTHORIZATION_TOKEN: Debian 12's AWS
 * CLI v2 (2.9) and rclone 1.60 read only that variable, and the JS SDK v3 warns through
 * console.warn when both it and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE are set, so exactly one is
 * printed. A value cannot follow a rotation, so `client-token rotate` keeps the previous token
 * valid for a grace period (client_tokens.grace_seconds) in which running processes are restarted.
 * `--token file` prints the file variable instead, which botocore, Go and JS re-read on every
 * fetch (no restart ever needed, but not for the older CLIs above). The docker format always
 * mounts the file: a value would sit in `docker run`'s argv, which every local user can read.
 */
import type { Config } from '../config/load.js';
import { clientTokenFile } from '../config/paths.js';
import { EXIT, UserError } from '../core/errors.js';
import { readSecretFile } from '../store/client-tokens.js';
import { type CliContext, configOf, print, stringOption } from './context.js';
import { daemonBaseUrl } from './daemon-client.js';
import { ENV_FORMATS, TOKEN_MODES } from './definitions.js';
import { assertWorkspaceName } from './names.js';
import { readWorkspace } from './workspace.js';

export const FORMATS = ENV_FORMATS;
export type EnvFormat = (typeof FORMATS)[number];
export type TokenMode = (typeof TOKEN_MODES)[number];

/** Where the token file is mounted inside a container by the docker format. */
const CONTAINER_TOKEN_PATH = '/run/eodh-credd/token';

export function credentialsUrl(baseUrl: string, workspace: string): string {
  return `${baseUrl}/v1/workspaces/${workspace}/credentials`;
}

/** The token by value (read from the file now) or the file's path, as the mode says. */
export type TokenVariable = { readonly value: string } | { readonly file: string };

export function tokenVariable(config: Config, workspace: string, mode: TokenMode): TokenVariable {
  const file = clientTokenFile(config.paths, workspace);
  return mode === 'file' ? { file } : { value: readSecretFile(file, `client token of workspace "${workspace}"`) };
}

export function envVariables(
  config: Config,
  workspace: string,
  region: string,
  token: TokenVariable = { file: clientTokenFile(config.paths, workspace) },
  storage?: { readonly s3Bucket: string | null; readonly s3Prefix: string | null },
): Array<[string, string]> {
  const vars: Array<[string, string]> = [
    ['AWS_CONTAINER_CREDENTIALS_FULL_URI', credentialsUrl(daemonBaseUrl(config), workspace)],
    'value' in token
      ? ['AWS_CONTAINER_AUTHORIZATION_TOKEN', token.value]
      : ['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', token.file],
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

/** The workspace's variables, as `env` prints them and `exec` sets them. */
export function workspaceVariables(
  config: Config,
  env: CliContext['env'],
  workspace: string,
  mode: TokenMode,
): Array<[string, string]> {
  const record = readWorkspace(config, env, workspace);
  return envVariables(config, workspace, record.region, tokenVariable(config, workspace, mode), record);
}

export function tokenMode(ctx: CliContext): TokenMode {
  const mode = stringOption(ctx, 'token') ?? 'value';
  if (!(TOKEN_MODES as readonly string[]).includes(mode))
    throw new UserError(`--token must be one of ${TOKEN_MODES.join(', ')}.`, EXIT.USAGE);
  return mode as TokenMode;
}

export async function run(ctx: CliContext): Promise<number> {
  const workspace = assertWorkspaceName(ctx.args[0]);
  const format = (stringOption(ctx, 'format') ?? 'sh') as EnvFormat;
  if (!FORMATS.includes(format)) throw new UserError(`--format must be one of ${FORMATS.join(', ')}.`, EXIT.USAGE);
  // Docker gets the file mounted, never the value on its command line.
  const mode = format === 'docker' ? 'file' : tokenMode(ctx);
  const config = configOf(ctx);
  const tokenFile = clientTokenFile(config.paths, workspace);
  for (const line of formatEnv(workspaceVariables(config, ctx.env, workspace, mode), format, tokenFile))
    print(ctx.stdout, line);
  return 0;
}

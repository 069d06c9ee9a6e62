/**
 * `eodh-credd aws-profile <ws> [--name NAME]`: the ~/.aws/config stanza that gets the workspace's
 * credentials through `credential_process`, for `aws --profile`, boto3 `Session(profile_name=…)`
 * and anything else that reads profiles. Paths are absolute (node and this CLI), so the stanza
 * works from any shell, cron job or notebook kernel; `--config` is passed on when one was given.
 */

import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT, UserError } from '../core/errors.js';
import { type CliContext, configOf, print, stringOption } from './context.js';
import { assertWorkspaceName } from './names.js';
import { readWorkspace } from './workspace.js';

/** This CLI's entry point, next to this file once built. */
const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

/**
 * Quote for the command line the SDKs run: botocore and the CLI split it with shlex (POSIX rules),
 * the JS and Go SDKs hand it to `sh -c`; single quotes mean the same to all of them.
 */
export function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

export function credentialProcessCommand(workspace: string, configFile?: string): string {
  const args = [
    process.execPath,
    MAIN,
    ...(configFile ? ['--config', configFile] : []),
    'credential-process',
    workspace,
  ];
  return args.map(quoteArg).join(' ');
}

/**
 * The default profile name: not the file sink's eodh-<ws>, because a [eodh-<ws>] section with
 * static keys in ~/.aws/credentials wins over a credential_process of the same name in
 * ~/.aws/config and would silently serve the sink's copy instead (#15; doctor warns about it).
 */
export function processProfileName(workspace: string): string {
  return `eodh-${workspace}-process`;
}

export function profileStanza(name: string, workspace: string, region: string, configFile?: string): string[] {
  return [
    `[profile ${name}]`,
    `credential_process = ${credentialProcessCommand(workspace, configFile)}`,
    `region = ${region}`,
  ];
}

export async function run(ctx: CliContext): Promise<number> {
  const workspace = assertWorkspaceName(ctx.args[0]);
  const name = stringOption(ctx, 'name') ?? processProfileName(workspace);
  if (!/^[\w.@+-]+$/.test(name))
    throw new UserError(`"${name}" is not a usable profile name: letters, digits and . _ - + @ only.`, EXIT.USAGE);
  const { region } = readWorkspace(configOf(ctx), ctx.env, workspace);
  const explicit = ctx.configFile ?? ctx.env.EODH_CREDD_CONFIG;
  print(
    ctx.stdout,
    `# eodh-credd workspace ${workspace}: add to ~/.aws/config, then use --profile ${name} or AWS_PROFILE=${name}`,
  );
  for (const line of profileStanza(name, workspace, region, explicit ? resolve(explicit) : undefined))
    print(ctx.stdout, line);
  return 0;
}

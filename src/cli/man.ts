/**
 * `eodh-credd man`: the manual page, eodh-credd(1) in roff, made from the command table
 * (definitions.ts) like --help and the completions. The package ships it built
 * (man/eodh-credd.1, written by `npm run build`).
 */

import { packageVersion } from './commands.js';
import type { CliContext } from './context.js';
import { COMMANDS, type CommandSpec, GLOBAL_OPTIONS, type OptionSpec } from './definitions.js';

/** Text safe in roff: backslashes doubled, hyphens as minus signs where they are options, no line starting with . or '. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/^([.'])/gm, '\\&$1');
}

function optionLines(o: OptionSpec): string[] {
  const extra = [
    o.choices ? `one of ${o.choices.join(', ')}` : '',
    o.default !== undefined ? `default ${o.default}` : '',
  ].filter(Boolean);
  return ['.TP', `.B ${roff(o.flags)}`, roff(`${o.description}${extra.length ? ` (${extra.join('; ')})` : ''}.`)];
}

function synopsis(spec: CommandSpec, path: readonly string[]): string {
  const args = (spec.arguments ?? []).map((a) => a.name).join(' ');
  const opts = spec.options?.length ? ' [options]' : '';
  const dashdash = spec.arguments?.some((a) => a.value === 'command') ? ' -- ' : ' ';
  const [first, ...rest] = args.split(' ');
  const shown = spec.arguments?.some((a) => a.value === 'command') ? `${first}${dashdash}${rest.join(' ')}` : args;
  return `eodh-credd ${path.join(' ')}${opts}${shown ? ` ${shown}` : ''}`.trim();
}

function commandSection(spec: CommandSpec, path: readonly string[]): string[] {
  if (spec.subcommands) return spec.subcommands.flatMap((s) => commandSection(s, [...path, s.name]));
  const lines = ['.TP', `.B ${roff(synopsis(spec, path))}`, roff(`${spec.summary}.`)];
  if (spec.details) lines.push('.IP', roff(spec.details));
  if (spec.options?.length) lines.push('.RS', ...spec.options.flatMap(optionLines), '.RE');
  for (const e of spec.examples ?? []) lines.push('.IP', `.EX\n${roff(`$ ${e}`)}\n.EE`);
  return lines;
}

export function manPage(date = new Date()): string {
  const month = date.toISOString().slice(0, 7);
  return `${[
    `.TH EODH\\-CREDD 1 "${month}" "eodh\\-credd ${roff(packageVersion())}" "User Commands"`,
    '.SH NAME',
    'eodh\\-credd \\- keep UK EO DataHub workspace keys and S3 credentials fresh and serve them to AWS clients',
    '.SH SYNOPSIS',
    '.B eodh\\-credd',
    '[\\-\\-config \\fIfile\\fR] [\\-\\-no\\-color] \\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]',
    '.br',
    '.B eodh\\-credd',
    '\\fIcommand\\fR \\-\\-help | help \\fIcommand\\fR | \\-\\-version',
    '.SH DESCRIPTION',
    roff(
      "eodh-credd is a local daemon for the UK EO DataHub. It keeps each workspace's API key and 1-hour S3 credentials, sealed, in SQLite, renews the credentials before they expire, rotates the API key before its 30 days run out, and serves the credentials on the AWS container-credentials endpoint, so that boto3, the AWS CLI and the SDKs work with no code change.",
    ),
    '.SH GLOBAL OPTIONS',
    ...[
      ...GLOBAL_OPTIONS,
      { flags: '-h, --help', description: 'show help for a command; never runs it' },
      { flags: '-V, --version', description: 'print the version' },
    ].flatMap(optionLines),
    '.SH COMMANDS',
    ...COMMANDS.flatMap((c) => commandSection(c, [c.name])),
    '.SH ENVIRONMENT',
    '.TP',
    '.B EODH_CREDD_CONFIG',
    'The configuration file, when \\-\\-config is not given.',
    '.TP',
    '.B NO_COLOR',
    'When set and not empty, no colour in the output.',
    '.TP',
    '.B XDG_CONFIG_HOME, XDG_DATA_HOME',
    'Where the configuration (eodh\\-credd/config.toml) and the data directory (eodh\\-credd/) are.',
    '.SH EXIT STATUS',
    roff(
      "0 on success; 1 when a check fails (doctor); 2 when something needs you (status); 64 for a usage error; 65 for bad data; 69 when the daemon or the hub is unavailable; 70 for an internal error; 77 when permission is refused; 78 for a configuration error. exec exits with its command's status.",
    ),
    '.SH FILES',
    '.TP',
    '.I ~/.config/eodh\\-credd/config.toml',
    'The configuration (see config.example.toml in the package).',
    '.TP',
    '.I ~/.local/share/eodh\\-credd/',
    'The database, the master key, the client tokens (tokens/<ws>.token) and the admin token, all owner\\-only.',
    '.SH SEE ALSO',
    '.BR aws (1),',
    '.BR systemctl (1)',
  ].join('\n')}\n`;
}

export function run(ctx: CliContext): number {
  ctx.stdout.write(manPage());
  return 0;
}

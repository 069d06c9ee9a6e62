/**
 * Every command, its arguments, options and example, as data. The argument parser (commands.ts),
 * the shell completions (completion.ts) and the man page (man.ts) are all made from this table,
 * so they cannot disagree. A command's code is loaded only when that command runs, so `eodh-credd
 * token` does not pay for fastify or the hub client.
 */
import type { CliContext } from './context.js';

export type Command = (ctx: CliContext) => Promise<number> | number;

/** What a value is, for completion: a workspace name (from the database), a file, a directory. */
export type ValueKind = 'workspace' | 'file' | 'directory' | 'command';

export interface OptionSpec {
  /** As commander spells it: "--format <format>", "-n, --names", "--no-color". */
  readonly flags: string;
  readonly description: string;
  readonly choices?: readonly string[];
  readonly default?: string;
  readonly value?: ValueKind;
}

export interface ArgumentSpec {
  /** "<workspace>", "[workspace]", "<command...>". */
  readonly name: string;
  readonly description: string;
  readonly value?: ValueKind;
  readonly choices?: readonly string[];
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  /** More text for --help and the man page. */
  readonly details?: string;
  readonly arguments?: readonly ArgumentSpec[];
  readonly options?: readonly OptionSpec[];
  readonly examples?: readonly string[];
  readonly subcommands?: readonly CommandSpec[];
  readonly load?: () => Promise<Command>;
}

const WORKSPACE: ArgumentSpec = { name: '<workspace>', description: 'workspace name', value: 'workspace' };
/** Whom `workspace allow` and `workspace deny` are about. */
const GRANTEE: readonly OptionSpec[] = [
  { flags: '--user <user>', description: 'a user name or uid' },
  { flags: '--group <group>', description: 'a group name or gid' },
];

export const ENV_FORMATS = ['sh', 'fish', 'json', 'dotenv', 'docker'] as const;
export const TOKEN_MODES = ['value', 'file'] as const;
export const SHELLS = ['bash', 'zsh', 'fish'] as const;

export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  {
    flags: '--config <file>',
    description: 'configuration file (default $EODH_CREDD_CONFIG, else $XDG_CONFIG_HOME/eodh-credd/config.toml)',
    value: 'file',
  },
  { flags: '--no-color', description: 'no colour in the output (also when NO_COLOR is set)' },
];

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'init',
    summary: 'create the data directory, master key and database',
    details: 'Safe to run twice: an existing key and database are kept.',
    examples: ['eodh-credd init'],
    load: async () => (await import('./init.js')).run,
  },
  {
    name: 'workspace',
    summary: 'add, list, remove workspaces, replace a key, keep a credentials file, allow other users',
    subcommands: [
      {
        name: 'add',
        summary: 'add a workspace: its API key is read from standard input or a prompt, proved, then stored',
        details:
          'The key is never taken from the command line, where ps and shell history would see it. With rotation enabled, this installation mints its own key from the pasted one at once and uses it from then on; the pasted key stays valid unless --revoke-pasted-key.',
        arguments: [WORKSPACE],
        options: [
          { flags: '--hub <url>', description: 'the hub', default: 'https://eodatahub.org.uk' },
          { flags: '--token-id <id>', description: "the key's token id on the hub (tells its expiry)" },
          { flags: '--region <region>', description: 'the S3 region', default: 'eu-west-2' },
          {
            flags: '--revoke-pasted-key',
            description:
              'revoke the pasted key on the hub once this installation has minted its own (needs --token-id and rotation enabled)',
          },
        ],
        examples: [
          'printf %s "$KEY" | eodh-credd workspace add my-ws --token-id 0123abcd',
          'eodh-credd workspace add my-ws --hub https://eodatahub.org.uk   # prompts for the key',
        ],
        load: async () => (await import('./workspace.js')).add,
      },
      {
        name: 'list',
        summary: "list the workspaces: name, hub, region, who besides the daemon's user may read it",
        options: [{ flags: '--names', description: 'names only, one per line' }],
        examples: ['eodh-credd workspace list'],
        load: async () => (await import('./workspace.js')).list,
      },
      {
        name: 'remove',
        summary: 'forget a workspace: its keys, credentials and client token',
        details:
          'First revokes on the hub the keys this installation minted for it (never the key you pasted), unless --keep-keys.',
        arguments: [WORKSPACE],
        options: [{ flags: '--keep-keys', description: 'leave the keys this installation minted valid on the hub' }],
        examples: ['eodh-credd workspace remove my-ws', 'eodh-credd workspace remove my-ws --keep-keys'],
        load: async () => (await import('./workspace.js')).remove,
      },
      {
        name: 'set-key',
        summary: 'give a workspace a new API key (read from standard input or a prompt)',
        arguments: [WORKSPACE],
        options: [
          { flags: '--token-id <id>', description: "the new key's token id on the hub" },
          {
            flags: '--revoke-pasted-key',
            description:
              'revoke the pasted key on the hub once this installation has minted its own (needs --token-id and rotation enabled)',
          },
        ],
        examples: ['printf %s "$KEY" | eodh-credd workspace set-key my-ws --token-id 0123abcd'],
        load: async () => (await import('./workspace.js')).setKey,
      },
      {
        name: 'sink',
        summary: 'keep a static profile [eodh-<ws>] in an AWS credentials file (or show the setting)',
        arguments: [WORKSPACE],
        options: [
          { flags: '--enable', description: 'keep the profile up to date on every renewal' },
          { flags: '--disable', description: 'stop and remove the profile' },
          {
            flags: '--file <path>',
            description: 'the credentials file (default $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials)',
            value: 'file',
          },
        ],
        examples: ['eodh-credd workspace sink my-ws --enable'],
        load: async () => (await import('./workspace.js')).sink,
      },
      {
        name: 'allow',
        summary: "let a user or a group besides the daemon's own fetch the workspace's credentials (shared machines)",
        details:
          'For the system service on a machine several users share: processes of that user (or of any member of that group, ' +
          "as /etc/group and /etc/passwd say when the daemon checks) may then fetch this workspace's S3 credentials and API key " +
          'with its client token; other workspaces and the admin routes stay closed to them. Names or numeric ids.',
        arguments: [WORKSPACE],
        options: GRANTEE,
        examples: ['eodh-credd workspace allow my-ws --user alice', 'eodh-credd workspace allow my-ws --group eo-team'],
        load: async () => (await import('./workspace-access.js')).allow,
      },
      {
        name: 'deny',
        summary: 'withdraw what "workspace allow" gave a user or a group',
        details: 'The running daemon refuses them from then on (403), whatever token they hold.',
        arguments: [WORKSPACE],
        options: GRANTEE,
        examples: ['eodh-credd workspace deny my-ws --user alice'],
        load: async () => (await import('./workspace-access.js')).deny,
      },
    ],
  },
  {
    name: 'serve',
    summary: 'run the daemon in the foreground (as systemd runs it)',
    examples: ['eodh-credd serve'],
    load: async () => (await import('./serve.js')).run,
  },
  {
    name: 'env',
    summary: 'print the variables that point AWS clients at the daemon',
    details:
      'By default the client token travels by value (AWS_CONTAINER_AUTHORIZATION_TOKEN), which every AWS client reads, ' +
      'and after "client-token rotate" the previous token keeps working for the grace period. ' +
      '--token file prints AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE instead, which the SDKs re-read on every fetch ' +
      "(not Debian 12's AWS CLI v2 or rclone 1.60).",
    arguments: [WORKSPACE],
    options: [
      { flags: '--format <format>', description: 'output format', choices: ENV_FORMATS, default: 'sh' },
      {
        flags: '--token <how>',
        description: 'pass the client token by value or by file',
        choices: TOKEN_MODES,
        default: 'value',
      },
    ],
    examples: ['eval "$(eodh-credd env my-ws)"', 'eodh-credd env my-ws --format fish | source'],
    load: async () => (await import('./env.js')).run,
  },
  {
    name: 'exec',
    summary: "run a command with the workspace's variables set; its exit status is passed through",
    arguments: [WORKSPACE, { name: '<command...>', description: 'the command and its arguments', value: 'command' }],
    options: [
      {
        flags: '--token <how>',
        description: 'pass the client token by value or by file',
        choices: TOKEN_MODES,
        default: 'value',
      },
    ],
    examples: ['eodh-credd exec my-ws -- aws s3 ls s3://my-bucket/', 'eodh-credd exec my-ws -- python analysis.py'],
    load: async () => (await import('./exec.js')).run,
  },
  {
    name: 'status',
    summary: "show each workspace's keys, credentials and errors",
    details: 'Exits 2 when something needs you.',
    options: [{ flags: '--json', description: 'as JSON' }],
    examples: ['eodh-credd status'],
    load: async () => (await import('./status.js')).run,
  },
  {
    name: 'token',
    summary: "print a workspace's API key (from the daemon)",
    arguments: [WORKSPACE],
    examples: ['export EODH_API_KEY="$(eodh-credd token my-ws)"'],
    load: async () => (await import('./token.js')).run,
  },
  {
    name: 'credential-process',
    summary: "print a workspace's S3 credential in the credential_process format (from the daemon)",
    arguments: [WORKSPACE],
    examples: ['eodh-credd credential-process my-ws'],
    load: async () => (await import('./credential-process.js')).run,
  },
  {
    name: 'aws-profile',
    summary: 'print a ~/.aws/config profile that gets credentials through credential-process',
    arguments: [WORKSPACE],
    options: [
      {
        flags: '--name <profile>',
        description: "profile name (default eodh-<ws>-process, unlike the sink's eodh-<ws>)",
      },
    ],
    examples: ['eodh-credd aws-profile my-ws >> ~/.aws/config && aws --profile eodh-my-ws-process s3 ls'],
    load: async () => (await import('./aws-profile.js')).run,
  },
  {
    name: 'refresh',
    summary: "renew a workspace's S3 credentials now (through the daemon)",
    arguments: [WORKSPACE],
    examples: ['eodh-credd refresh my-ws'],
    load: async () => (await import('./admin.js')).command('refresh'),
  },
  {
    name: 'rotate',
    summary: "rotate a workspace's API key now (through the daemon)",
    arguments: [WORKSPACE],
    examples: ['eodh-credd rotate my-ws'],
    load: async () => (await import('./admin.js')).command('rotate'),
  },
  {
    name: 'client-token',
    summary: "replace a workspace's local client token",
    subcommands: [
      {
        name: 'rotate',
        summary: 'give a workspace a new client token; the previous one works for a grace period',
        details:
          'Processes started with the old token by value keep working until the grace period ends; ' +
          'give --grace 0 when the old token may have leaked.',
        arguments: [WORKSPACE],
        options: [
          {
            flags: '--grace <duration>',
            description:
              'how long the previous token still works: 0, 90s, 15m, 2h (default: client_tokens.grace in the config, 15m)',
          },
        ],
        examples: ['eodh-credd client-token rotate my-ws', 'eodh-credd client-token rotate my-ws --grace 0'],
        load: async () => (await import('./client-token.js')).run,
      },
    ],
  },
  {
    name: 'rekey',
    summary: 're-seal every stored secret under a new master key (stop the daemon first)',
    examples: ['systemctl --user stop eodh-credd && eodh-credd rekey && systemctl --user start eodh-credd'],
    load: async () => (await import('./rekey.js')).run,
  },
  {
    name: 'backup',
    summary: 'write a consistent copy of the database, secrets still sealed (the daemon may run)',
    details:
      'The copy opens only with the master key, and the key is useless without it: keep a copy of the key stored apart from the backup. The daemon also keeps the last 3 automatic backups in the data directory, one after each key change.',
    arguments: [{ name: '<file>', description: 'where to write it (mode 0600)', value: 'file' }],
    examples: ['eodh-credd backup ~/credd-backup.db'],
    load: async () => (await import('./backup.js')).runBackup,
  },
  {
    name: 'restore',
    summary: 'replace the database with a backup (stop the daemon first; the one replaced is kept)',
    arguments: [{ name: '<file>', description: 'a file written by backup', value: 'file' }],
    examples: [
      'systemctl --user stop eodh-credd && eodh-credd restore ~/credd-backup.db && systemctl --user start eodh-credd',
    ],
    load: async () => (await import('./backup.js')).runRestore,
  },
  {
    name: 'doctor',
    summary: 'check the installation, one line per check with its fix (exit 1 when one fails)',
    options: [{ flags: '--json', description: 'as JSON' }],
    examples: ['eodh-credd doctor'],
    load: async () => (await import('./doctor.js')).run,
  },
  {
    name: 'install-systemd',
    summary: 'write the systemd unit and start it where that is safe',
    options: [
      { flags: '--user', description: 'a user unit (the default)' },
      { flags: '--system', description: 'a system unit, for a shared machine' },
      { flags: '--dry-run', description: 'print the unit and the commands; write nothing' },
      {
        flags: '--output <dir>',
        description: 'write the unit into this directory and run nothing',
        value: 'directory',
      },
    ],
    examples: ['eodh-credd install-systemd --user', 'eodh-credd install-systemd --system --dry-run'],
    load: async () => (await import('./install-systemd.js')).run,
  },
  {
    name: 'demo',
    summary: 'run a hub simulator and the daemon with a demo workspace, until Ctrl-C',
    options: [
      { flags: '--port <port>', description: 'daemon port (0: any free one)', default: '0' },
      { flags: '--s3-lifetime <seconds>', description: 'lifetime of the simulated S3 credentials', default: '3600' },
    ],
    examples: ['eodh-credd demo'],
    load: async () => (await import('./demo.js')).run,
  },
  {
    name: 'hub-sim',
    summary: 'run the EODH hub simulator',
    options: [
      { flags: '--port <port>', description: 'port (0: any free one)' },
      { flags: '--s3-lifetime <seconds>', description: 'lifetime of the S3 credentials it hands out' },
      { flags: '--day-ms <ms>', description: 'length of a simulated day' },
      { flags: '--sts-endpoint <url>', description: 'mint S3 credentials through this STS (with --role-arn)' },
      { flags: '--role-arn <arn>', description: 'the role to assume' },
      { flags: '--sts-region <region>', description: 'the STS region' },
    ],
    examples: ['eodh-credd hub-sim --port 8080'],
    load: async () => (await import('./hub-sim.js')).run,
  },
  {
    name: 'completion',
    summary: 'print the shell completion script',
    arguments: [{ name: '<shell>', description: 'bash, zsh or fish', choices: SHELLS }],
    examples: [
      'eodh-credd completion bash > ~/.local/share/bash-completion/completions/eodh-credd',
      'eodh-credd completion zsh > "${fpath[1]}/_eodh-credd"',
      'eodh-credd completion fish > ~/.config/fish/completions/eodh-credd.fish',
    ],
    load: async () => (await import('./completion.js')).run,
  },
  {
    name: 'man',
    summary: 'print the manual page (roff)',
    examples: ['eodh-credd man | man -l -'],
    load: async () => (await import('./man.js')).run,
  },
];

/** The long option names of a spec ("--format <format>" -> "--format"), for completion. */
export function longFlag(option: OptionSpec): string {
  return option.flags.split(/[ ,]+/).find((w) => w.startsWith('--')) ?? option.flags;
}

/** Whether an option takes a value. */
export function takesValue(option: OptionSpec): boolean {
  return /[<[]/.test(option.flags);
}

/**
 * The eodh-credd command. Commands load lazily, so `eodh-credd env` does not pay for fastify.
 * Errors meant for the user are one sentence on stderr with a sysexits code; anything else is a
 * bug and says so, still without a stack trace unless EODH_CREDD_DEBUG is set.
 */
import { EXIT, UserError } from '../core/errors.js';
import type { CliContext } from './context.js';
import { storageFailure } from './exit-code.js';

type Command = (ctx: CliContext) => Promise<number> | number;

const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  init: {
    summary: 'create the data directory, master key and database',
    load: async () => (await import('./init.js')).run,
  },
  workspace: {
    summary: 'add|list|remove|set-key|sink workspaces (keys are read from stdin or a prompt)',
    load: async () => (await import('./workspace.js')).run,
  },
  serve: { summary: 'run the daemon in the foreground', load: async () => (await import('./serve.js')).run },
  env: {
    summary: 'print the variables that point AWS clients at the daemon',
    load: async () => (await import('./env.js')).run,
  },
  status: {
    summary: "show each workspace's keys, credentials and errors (--json)",
    load: async () => (await import('./status.js')).run,
  },
  token: {
    summary: "print a workspace's API key (from the daemon)",
    load: async () => (await import('./token.js')).run,
  },
  'credential-process': {
    summary: "print a workspace's S3 credential in the credential_process format (from the daemon)",
    load: async () => (await import('./credential-process.js')).run,
  },
  'aws-profile': {
    summary: 'print the ~/.aws/config profile that uses credential-process (<ws> [--name NAME])',
    load: async () => (await import('./aws-profile.js')).run,
  },
  refresh: {
    summary: "renew a workspace's S3 credentials now",
    load: async () => (await import('./admin.js')).command('refresh'),
  },
  rotate: {
    summary: "rotate a workspace's API key now",
    load: async () => (await import('./admin.js')).command('rotate'),
  },
  'client-token': {
    summary: 'rotate <ws>: give a workspace a new local client token (the old one stops working)',
    load: async () => (await import('./client-token.js')).run,
  },
  rekey: {
    summary: 're-seal every stored secret under a new master key (stop the daemon first)',
    load: async () => (await import('./rekey.js')).run,
  },
  backup: {
    summary: 'backup FILE: write a consistent, still sealed copy of the database (the daemon may run)',
    load: async () => (await import('./backup.js')).runBackup,
  },
  restore: {
    summary: 'restore FILE: replace the database with a backup (stop the daemon first; the old one is kept)',
    load: async () => (await import('./backup.js')).runRestore,
  },
  demo: {
    summary: 'run a hub simulator and the daemon with a demo workspace',
    load: async () => (await import('./demo.js')).run,
  },
  doctor: {
    summary: 'check the installation, one line per check with a fix (exit 1 when one fails)',
    load: async () => (await import('./doctor.js')).run,
  },
  'install-systemd': {
    summary: 'write the systemd unit (--user|--system; --dry-run, --output DIR)',
    load: async () => (await import('./install-systemd.js')).run,
  },
  'hub-sim': { summary: 'run the EODH hub simulator', load: async () => (await import('./hub-sim.js')).run },
};

export function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'Usage: eodh-credd [--config FILE] <command> [options]',
    '',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Config: --config FILE, else $EODH_CREDD_CONFIG, else $XDG_CONFIG_HOME/eodh-credd/config.toml.',
  ].join('\n');
}

/** Split off the global --config option, wherever it stands. */
function splitGlobal(argv: string[]): { configFile: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--config') {
      configFile = argv[++i];
      if (configFile === undefined) throw new UserError('--config needs a file.', EXIT.USAGE);
    } else if (arg.startsWith('--config=')) configFile = arg.slice('--config='.length);
    else rest.push(arg);
  }
  return { configFile, rest };
}

export async function main(argv: string[], io: Omit<CliContext, 'args' | 'configFile'>): Promise<number> {
  try {
    const { configFile, rest } = splitGlobal(argv);
    const [name, ...args] = rest;
    if (!name || name === '--help' || name === '-h' || name === 'help') {
      io.stdout.write(`${usage()}\n`);
      return name ? EXIT.OK : EXIT.USAGE;
    }
    const command = commands[name];
    if (!command) throw new UserError(`Unknown command "${name}".\n${usage()}`, EXIT.USAGE);
    const run = await command.load();
    return await run({ ...io, args, configFile });
  } catch (err) {
    const stored = storageFailure(err);
    if (stored) {
      io.stderr.write(`eodh-credd: ${stored.message}\n`);
      return stored.exitCode;
    }
    if (err instanceof UserError) {
      io.stderr.write(`eodh-credd: ${err.message}\n`);
      return err.exitCode;
    }
    if (err && typeof err === 'object' && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`eodh-credd: ${(err as Error).message}\n`);
      return EXIT.USAGE;
    }
    io.stderr.write(`eodh-credd: internal error: ${(err as Error)?.message ?? String(err)}\n`);
    if (io.env.EODH_CREDD_DEBUG) io.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    return EXIT.SOFTWARE;
  }
}

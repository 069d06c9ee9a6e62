/**
 * `eodh-credd install-systemd [--user|--system] [--dry-run] [--output DIR]`: write the systemd
 * unit (from systemd/ in the package) with the absolute paths of this node and this eodh-credd,
 * then start it where that can be done safely (user unit, systemd running, `init` done) or print
 * the commands that remain.
 *
 * --dry-run prints the unit and the commands and writes nothing; --output DIR writes the unit
 * into DIR and runs nothing (both for inspection and tests).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { APP } from '../config/paths.js';
import { EXIT, UserError } from '../core/errors.js';
import { replaceSecretFile } from '../store/files.js';
import { type CliContext, configOf, print } from './context.js';

export type UnitScope = 'user' | 'system';

/** Name of the installed unit, whatever the scope: `systemctl [--user] start eodh-credd`. */
export const UNIT_NAME = `${APP}.service`;

/** The unit templates shipped in systemd/. */
export const TEMPLATES: Record<UnitScope, string> = { user: 'eodh-credd.service', system: 'eodh-credd-system.service' };

/** The socket unit beside the service (#12): systemd holds the port while the service is down. */
export const SOCKET_NAME = `${APP}.socket`;
export const SOCKET_TEMPLATES: Record<UnitScope, string> = {
  user: 'eodh-credd.socket',
  system: 'eodh-credd-system.socket',
};

/** Names of the encrypted master-key credential and the service account of the system unit. */
export const SYSTEM_CREDENTIAL = '/etc/eodh-credd/master-key.cred';
export const SYSTEM_ACCOUNT = 'eodh-credd';

const here = fileURLToPath(import.meta.url);

/** The package root: the directory above this file that holds systemd/. */
export function packageRoot(): string {
  let dir = dirname(here);
  for (;;) {
    if (existsSync(join(dir, 'systemd', TEMPLATES.user))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new UserError(`Cannot find the systemd/ unit templates above ${here}.`, EXIT.SOFTWARE);
    dir = parent;
  }
}

/** The executable entry point: main.js beside this file once built (from the sources, the build of them). */
export function defaultEntry(): string {
  return here.endsWith('.ts') ? join(packageRoot(), 'dist', 'src', 'cli', 'main.js') : join(dirname(here), 'main.js');
}

export function readTemplate(scope: UnitScope, templates: Record<UnitScope, string> = TEMPLATES): string {
  return readFileSync(join(packageRoot(), 'systemd', templates[scope]), 'utf8');
}

/**
 * The socket unit listening on the configured port (both loopback addresses); the template's
 * default port when the configuration asks for any free one (0), which a socket unit cannot.
 */
export function renderSocket(template: string, port: number): string {
  if (!Number.isInteger(port) || port < 1) return template;
  return template.replace(/^(ListenStream=.*:)\d+$/gm, `$1${port}`);
}

/**
 * One word of an ExecStart= command line: specifiers (%) and variables ($) escaped, quoted when
 * it holds spaces or quotes (systemd.service(5), "Command lines").
 */
export function systemdWord(word: string): string {
  const escaped = word.replaceAll('%', '%%').replaceAll('$', '$$$$');
  return /[\s"'\\;]/.test(escaped) ? `"${escaped.replace(/[\\"]/g, (c) => `\\${c}`)}"` : escaped;
}

/** One word of a shell command line. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** An Environment= assignment, quoted as a whole. */
function environmentLine(name: string, value: string): string {
  const escaped = `${name}=${value}`.replaceAll('%', '%%').replace(/[\\"]/g, (c) => `\\${c}`);
  return `Environment="${escaped}"`;
}

export interface RenderOptions {
  readonly node: string;
  readonly entry: string;
  /** --config FILE for the daemon (absolute), when not the default. */
  readonly configFile?: string | undefined;
  /** Variables the daemon needs to find the same directories as the CLI. */
  readonly environment?: Readonly<Record<string, string>> | undefined;
}

/** The template with its ExecStart= pointing at `node entry [--config FILE] serve`. */
export function renderUnit(template: string, options: RenderOptions): string {
  for (const path of [options.node, options.entry, options.configFile]) {
    if (path !== undefined && !isAbsolute(path))
      throw new UserError(`${path}: a unit needs absolute paths.`, EXIT.USAGE);
  }
  const words = [options.node, options.entry, ...(options.configFile ? ['--config', options.configFile] : []), 'serve'];
  const lines = template.split('\n');
  const at = lines.findIndex((l) => l.startsWith('ExecStart='));
  if (at < 0) throw new UserError('The unit template has no ExecStart= line.', EXIT.SOFTWARE);
  const env = Object.entries(options.environment ?? {}).map(([k, v]) => environmentLine(k, v));
  lines.splice(at, 1, ...env, `ExecStart=${words.map(systemdWord).join(' ')}`);
  return lines.join('\n');
}

/** Where the unit goes by default. */
export function unitDirectory(scope: UnitScope, env: CliContext['env']): string {
  if (scope === 'system') return '/etc/systemd/system';
  const configHome = env.XDG_CONFIG_HOME || join(env.HOME || '/', '.config');
  return join(configHome, 'systemd', 'user');
}

/** Whether systemctl can talk to the manager of this scope here and now. */
export function systemctlUsable(scope: UnitScope, env: CliContext['env']): boolean {
  if (!existsSync('/run/systemd/system')) return false; // not booted with systemd (a container, CI)
  if (scope === 'system') return true;
  return Boolean(env.XDG_RUNTIME_DIR && existsSync(join(env.XDG_RUNTIME_DIR, 'systemd', 'private')));
}

/** Paths that ProtectHome= hides from the system unit. */
function hiddenFromSystemUnit(path: string): boolean {
  return /^\/(home|root|run\/user)(\/|$)/.test(path);
}

/** The commands that finish a system installation (an admin runs them). */
export function systemSteps(node: string, entry: string): string[] {
  const run = [
    'sudo systemd-run --quiet --pipe --wait --collect',
    `-p User=${SYSTEM_ACCOUNT} -p Group=${SYSTEM_ACCOUNT} -p UMask=0077`,
    `-p StateDirectory=${APP} -p StateDirectoryMode=0700 -p ConfigurationDirectory=${APP}`,
    `-p LoadCredentialEncrypted=master-key:${SYSTEM_CREDENTIAL}`,
    `-- ${[node, entry].map(shellWord).join(' ')} "$@"`,
  ].join(' ');
  return [
    `sudo useradd --system --user-group --no-create-home --home-dir /var/lib/${APP} --shell /usr/sbin/nologin ${SYSTEM_ACCOUNT}`,
    `sudo install -d -m 0755 /etc/${APP}`,
    `head -c 32 /dev/urandom | base64 | sudo systemd-creds encrypt --name=master-key - ${SYSTEM_CREDENTIAL}`,
    `credd() { ${run}; }   # eodh-credd as the service account, with the service's key and directories`,
    'credd init',
    'printf %s "$KEY" | credd workspace add <workspace> --hub https://eodatahub.org.uk --token-id <token id>',
    'sudo systemctl daemon-reload',
    `sudo systemctl enable --now ${SOCKET_NAME} ${APP}`,
    `systemctl status ${APP}; journalctl -u ${APP}`,
  ];
}

export function userSteps(): string[] {
  return [
    'systemctl --user daemon-reload',
    `systemctl --user enable --now ${SOCKET_NAME} ${APP}`,
    'loginctl enable-linger "$USER"   # keep it running while you are logged out',
    `systemctl --user status ${APP}; journalctl --user -u ${APP}`,
  ];
}

export async function run(ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args: ctx.args,
    options: {
      user: { type: 'boolean', default: false },
      system: { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      output: { type: 'string' },
    },
  });
  if (values.user && values.system) throw new UserError('Choose one of --user and --system.', EXIT.USAGE);
  const scope: UnitScope = values.system ? 'system' : 'user';
  const node = process.execPath;
  const entry = defaultEntry();
  if (!existsSync(entry))
    throw new UserError(`${entry} does not exist: build eodh-credd first (npm run build).`, EXIT.SOFTWARE);
  const configFile = ctx.configFile ?? ctx.env.EODH_CREDD_CONFIG;
  const config = configOf(ctx); // a broken config is better found now than at the first start

  const environment: Record<string, string> = {};
  if (scope === 'user') {
    // The service must find the same directories as this shell's eodh-credd.
    for (const name of ['XDG_CONFIG_HOME', 'XDG_DATA_HOME'] as const) {
      const value = ctx.env[name];
      if (value) environment[name] = resolve(value);
    }
  }
  const unit = renderUnit(readTemplate(scope), {
    node,
    entry,
    configFile: configFile ? resolve(configFile) : undefined,
    environment,
  });

  if (scope === 'system') {
    for (const path of [node, entry, configFile].filter((p): p is string => Boolean(p))) {
      if (hiddenFromSystemUnit(resolve(path))) {
        ctx.stderr.write(
          `eodh-credd: warning: ${path} is under a home directory, which the system unit cannot see (ProtectHome=yes): install node and eodh-credd system-wide (e.g. npm install -g as root).\n`,
        );
      }
    }
  }

  const socket = renderSocket(readTemplate(scope, SOCKET_TEMPLATES), config.server.port);
  const steps = scope === 'system' ? systemSteps(node, entry) : userSteps();
  if (values['dry-run']) {
    print(ctx.stdout, `# ${join(values.output ?? unitDirectory(scope, ctx.env), UNIT_NAME)}`);
    print(ctx.stdout, unit.trimEnd());
    print(ctx.stdout);
    print(ctx.stdout, `# ${join(values.output ?? unitDirectory(scope, ctx.env), SOCKET_NAME)}`);
    print(ctx.stdout, socket.trimEnd());
    print(ctx.stdout);
    print(ctx.stdout, '# Then:');
    for (const step of steps) print(ctx.stdout, step);
    return EXIT.OK;
  }

  const dir = values.output ?? unitDirectory(scope, ctx.env);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = join(dir, UNIT_NAME);
  // A unit holds no secret; systemd wants it readable.
  replaceSecretFile(file, unit, 0o644);
  print(ctx.stdout, `Wrote ${file}`);
  const socketFile = join(dir, SOCKET_NAME);
  replaceSecretFile(socketFile, socket, 0o644);
  print(ctx.stdout, `Wrote ${socketFile}`);

  const initialised = existsSync(config.paths.database);
  if (values.output === undefined && scope === 'user' && systemctlUsable(scope, ctx.env) && initialised) {
    for (const args of [
      ['--user', 'daemon-reload'],
      ['--user', 'enable', '--now', SOCKET_NAME, APP],
    ]) {
      print(ctx.stdout, `$ systemctl ${args.join(' ')}`);
      try {
        execFileSync('systemctl', args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...ctx.env } });
      } catch {
        throw new UserError(`"systemctl ${args.join(' ')}" failed; the unit is in ${file}.`, EXIT.UNAVAILABLE);
      }
    }
    print(ctx.stdout, `Started. See it with: systemctl --user status ${APP}; eodh-credd status`);
    print(ctx.stdout, `To keep it running while you are logged out: loginctl enable-linger "$USER"`);
    return EXIT.OK;
  }
  if (scope === 'user' && !initialised) print(ctx.stdout, 'First: eodh-credd init');
  print(ctx.stdout, 'Then:');
  for (const step of steps) print(ctx.stdout, `  ${step}`);
  return EXIT.OK;
}

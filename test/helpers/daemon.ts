/**
 * The real, built eodh-credd in integration tests: an isolated installation per test, the CLI as
 * a child process, and `serve` as a child process that can be killed at will.
 *
 *   const home = makeHome(t, { config: '[renewal]\nsweep_schedule = "* * * * * *"\n' });
 *   await runCli(home, ['init']);
 *   await runCli(home, ['workspace', 'add', 'ws', '--hub', sim.url, '--token-id', key.id], { stdin: key.token });
 *   const daemon = await startServe(home, { t });     // waits for daemon.json and /healthz
 *   await fetch(`${daemon.url}/v1/workspaces/ws/credentials`, { headers: { authorization: clientToken(home, 'ws') } });
 *   await daemon.stop();                              // SIGTERM; t's teardown kills whatever is left
 *
 * Also: spawnServe (no wait: for a daemon expected to die, e.g. with EODH_CREDD_FAILPOINT), then
 * ready()/waitExit()/kill(); runProgram (any program, with an environment given whole); waitFor.
 *
 * Everything runs from dist/: build first (`npm test` does; alone, `npm run build`).
 *
 * Isolation: a fresh temporary HOME with XDG_CONFIG_HOME and XDG_DATA_HOME below it, and an
 * environment built from scratch (PATH plus those), so nothing leaks in from the test runner
 * (NODE_OPTIONS with tap's loaders, CREDENTIALS_DIRECTORY, EODH_CREDD_CONFIG, STATE_DIRECTORY).
 * The config file gets `[server] port = 0` and `[sts] verify = false` unless the caller's config
 * text sets those sections itself.
 *
 * Cleanup: `serve` runs in its own process group behind a tiny shell watchdog that holds a pipe
 * from this process and kills the daemon when the pipe closes, i.e. when this process dies
 * without cleaning up (tap's timeout, SIGKILL). The shell execs node, so the child's pid is the
 * daemon's own and `exited` reports the daemon's real exit (a SIGKILL shows as signal 'SIGKILL').
 * t's teardown and a process 'exit' hook kill every daemon still running; the home is removed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { APP, clientTokenFile, type DataPaths, dataPaths } from '../../src/config/paths.js';
import type { RuntimeInfo } from '../../src/daemon.js';

/** The built CLI entry point (`eodh-credd`). */
export const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

/** Anything with tap's `teardown` (a tap Test). */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export interface Home {
  /** The temporary HOME; everything below it is removed at teardown. */
  readonly root: string;
  /** The environment every child gets (add to it with the `env` options, never from process.env). */
  readonly env: Readonly<Record<string, string>>;
  readonly configFile: string;
  /** Database, master key, tokens directory, admin token, lock. */
  readonly paths: DataPaths;
  /** Where a running daemon writes {pid, url, port}. */
  readonly runtimeFile: string;
}

export interface MakeHomeOptions {
  /** TOML appended to the defaults; a section named here replaces the default one. */
  readonly config?: string;
}

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** Written to the command's standard input, which is then closed (the API key for `workspace add`). */
  readonly stdin?: string;
  /** Added to the home's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** The command is killed after this long (default 30 s). */
  readonly timeoutMs?: number;
  /** A command prefix that runs eodh-credd as another user (test/helpers/users.ts: `user.runAs`). */
  readonly runAs?: readonly string[];
}

export interface ServeOptions {
  /** Extra environment, e.g. { EODH_CREDD_FAILPOINT: 'rotation:minted' }. */
  readonly env?: Readonly<Record<string, string>>;
  /** Kill the daemon at this test's teardown if it is still running. */
  readonly t?: TeardownHost;
  /** How long `ready()` waits for daemon.json and /healthz (default 30 s). */
  readonly readyTimeoutMs?: number;
  /** A command prefix that runs the daemon as another user (test/helpers/users.ts: `user.runAs`). */
  readonly runAs?: readonly string[];
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Settles when the daemon has exited, however it ended. Never rejects. */
  readonly exited: Promise<Exit>;
  /** Whether the daemon has exited. */
  hasExited(): boolean;
  /** What the daemon printed so far (its JSON log lines), the last 256 KB. */
  output(): string;
  /** Wait until this daemon wrote daemon.json and answers /healthz; its base URL. Rejects if it exits first. */
  ready(): Promise<string>;
  /** Wait at most `ms` for the daemon to exit; null when it is still running. */
  waitExit(ms: number): Promise<Exit | null>;
  /** SIGKILL now, like a power cut; resolves once it has exited. */
  kill(): Promise<Exit>;
  /** SIGTERM (graceful stop), SIGKILL after `graceMs` (default 8 s); resolves once it has exited. */
  stop(graceMs?: number): Promise<Exit>;
}

export type StartedServe = ServeProcess & { readonly url: string };

const OUTPUT_LIMIT = 256 * 1024;
const NODE_OPTIONS_WANTED = 'EODH_CREDD_TEST_NODE_OPTIONS';

// Under tap, every spawn gets tap's NODE_OPTIONS (an --import hook that records each module a
// process loads, about doubling the start-up cost of a node child) and _TAPJS_PROCESSINFO_*
// variables, whatever env is passed. Children therefore start through this POSIX sh prelude,
// which removes them and restores the NODE_OPTIONS the caller asked for, if any.
const CLEAN_ENV = `
for v in $(env | sed -n 's/^\\(_TAPJS_PROCESSINFO_[A-Za-z0-9_]*\\)=.*/\\1/p'); do unset "$v"; done
if [ -n "\${${NODE_OPTIONS_WANTED}+x}" ]; then NODE_OPTIONS=$${NODE_OPTIONS_WANTED}; export NODE_OPTIONS; unset ${NODE_OPTIONS_WANTED}; else unset NODE_OPTIONS; fi
`;

// Then for `serve`: keep a dup of our pipe on fd 3 in a background watchdog, and exec node (same
// pid). The watchdog's read returns at EOF, i.e. when this process is gone, and kills the daemon ($$).
const WATCHDOG = `${CLEAN_ENV}
exec 3<&0
{ read _ <&3; kill -KILL $$; } </dev/null >/dev/null 2>&1 &
exec "$0" "$@" </dev/null 3<&-
`;

/** The environment to spawn the prelude with, carrying the caller's own NODE_OPTIONS past tap. */
function preludeEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  return env.NODE_OPTIONS === undefined ? { ...env } : { ...env, [NODE_OPTIONS_WANTED]: env.NODE_OPTIONS };
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is gone
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) killGroup(child);
  });
}

function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} does not exist: run "npm run build" first (npm test does).`);
}

/** A fresh, isolated installation directory (not yet initialised: run `init`). Removed at teardown. */
export function makeHome(t: TeardownHost, options: MakeHomeOptions = {}): Home {
  const root = mkdtempSync(join(tmpdir(), 'eodh-credd-it-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: root,
    XDG_CONFIG_HOME: join(root, 'config'),
    XDG_DATA_HOME: join(root, 'data'),
  };
  const configFile = join(env.XDG_CONFIG_HOME, APP, 'config.toml');
  mkdirSync(join(env.XDG_CONFIG_HOME, APP), { recursive: true });
  const extra = options.config ?? '';
  const defaults = [
    /^\[server\]/m.test(extra) ? '' : '[server]\nport = 0\n',
    /^\[sts\]/m.test(extra) ? '' : '[sts]\nverify = false\n',
  ].join('');
  writeFileSync(configFile, `${defaults}${extra}\n`, { mode: 0o600 });
  const paths = dataPaths(join(env.XDG_DATA_HOME, APP));
  // The file daemon.ts's runtimeFile() names.
  return { root, env, configFile, paths, runtimeFile: join(paths.dataDir, 'daemon.json') };
}

/** Run `eodh-credd <args>` to completion in the home's environment. Never rejects on a non-zero exit: check `code`. */
export function runCli(home: Home, args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  assertBuilt();
  const [command, ...prefix] = [...(options.runAs ?? []), process.execPath];
  return runProgram(command!, [...prefix, CLI, ...args], { ...options, env: { ...home.env, ...options.env } });
}

export interface ProgramOptions extends CliOptions {
  /** The program's whole environment: nothing is inherited from this process (default: PATH only). */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

/** Run any program to completion (an AWS client, a script). Never rejects on a non-zero exit: check `code`. */
export function runProgram(command: string, args: readonly string[], options: ProgramOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', `${CLEAN_ENV}exec "$0" "$@"`, command, ...args], {
      env: preludeEnv(options.env ?? { PATH: process.env.PATH ?? '/usr/bin:/bin' }),
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => undefined); // a program that exits without reading its input
    child.stdin.end(options.stdin ?? '');
  });
}

/** The client token of a workspace, as AWS clients send it in the Authorization header. */
export function clientToken(home: Home, workspace: string): string {
  return readFileSync(clientTokenFile(home.paths, workspace), 'utf8');
}

/** Start `eodh-credd serve` without waiting for it (it may die before it is ready, by design). */
export function spawnServe(home: Home, options: ServeOptions = {}): ServeProcess {
  assertBuilt();
  installExitHook();
  // With runAs, the prefix (setpriv) execs node in turn: the pid is still the daemon's.
  const child = spawn('/bin/sh', ['-c', WATCHDOG, ...(options.runAs ?? []), process.execPath, CLI, 'serve'], {
    env: preludeEnv({ ...home.env, ...options.env }),
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // its own process group: the daemon and its watchdog
  });
  if (child.pid === undefined) throw new Error('could not start eodh-credd serve');
  const pid = child.pid;
  running.add(child);
  options.t?.teardown(() => handle.kill());
  let out = '';
  const collect = (d: string) => {
    out += d;
    if (out.length > OUTPUT_LIMIT) out = out.slice(-OUTPUT_LIMIT);
  };
  child.stdout!.setEncoding('utf8').on('data', collect);
  child.stderr!.setEncoding('utf8').on('data', collect);
  child.stdin!.on('error', () => undefined);
  let exit: Exit | null = null;
  const exited = new Promise<Exit>((resolve) => {
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      running.delete(child);
      killGroup(child); // the watchdog, now that the daemon is gone
      child.stdin!.destroy();
      resolve(exit);
    });
  });

  const waitExit = async (ms: number): Promise<Exit | null> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
    try {
      return await Promise.race([exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (exit) return;
    try {
      process.kill(pid, sig);
    } catch {
      // exited meanwhile
    }
  };

  const ready = async (): Promise<string> => {
    const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
    let url: string | null = null;
    while (Date.now() < deadline) {
      if (exit) {
        throw new Error(`eodh-credd serve exited before it was ready (${describeExit(exit)}); output:\n${out}`);
      }
      if (url === null) url = readRuntime(home, pid)?.url ?? null;
      if (url !== null && (await healthy(url))) return url;
      await sleep(url === null ? 10 : 50);
    }
    throw new Error(`eodh-credd serve was not ready within ${options.readyTimeoutMs ?? 30_000} ms; output:\n${out}`);
  };

  const handle: ServeProcess = {
    child,
    pid,
    exited,
    hasExited: () => exit !== null,
    output: () => out,
    ready,
    waitExit,
    async kill() {
      await signal('SIGKILL');
      return exited;
    },
    async stop(graceMs = 8_000) {
      await signal('SIGTERM');
      const done = await waitExit(graceMs);
      if (done) return done;
      await signal('SIGKILL');
      return exited;
    },
  };
  return handle;
}

/** Start `eodh-credd serve` and wait until it is ready (killed if it does not get there). */
export async function startServe(home: Home, options: ServeOptions = {}): Promise<StartedServe> {
  const daemon = spawnServe(home, options);
  try {
    const url = await daemon.ready();
    return Object.assign(daemon, { url });
  } catch (err) {
    await daemon.kill();
    throw err;
  }
}

/** What daemon.json says, if it was written by the process `pid` (a killed daemon leaves a stale one). */
export function readRuntime(home: Home, pid?: number): RuntimeInfo | null {
  try {
    const info = JSON.parse(readFileSync(home.runtimeFile, 'utf8')) as RuntimeInfo;
    return pid === undefined || info.pid === pid ? info : null;
  } catch {
    return null; // absent, or being replaced
  }
}

async function healthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false;
  }
}

export function describeExit(exit: Exit): string {
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

/**
 * Poll `fn` until it returns a truthy value (returned) or `ms` pass (throws, naming `what` and the
 * last value or error seen). `fn` may be async; errors it throws count as "not yet".
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  ms: number,
  options: { intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${ms} ms waiting for ${options.what ?? 'a condition'} (last: ${seen})`);
    }
    await sleep(options.intervalMs ?? 50);
  }
}

/**
 * Start `eodh-credd <args>` in the home's environment without waiting for it (a command that runs
 * until signalled: `hub-sim`, `demo`). Killed at t's teardown if still running.
 */
export function spawnCli(home: Home, args: readonly string[], t: TeardownHost): ChildProcess {
  assertBuilt();
  const child = spawn('/bin/sh', ['-c', `${CLEAN_ENV}exec "$0" "$@"`, process.execPath, CLI, ...args], {
    env: preludeEnv(home.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  });
  return child;
}

/**
 * What every benchmark needs: an isolated installation (HOME and the XDG directories inside one
 * temporary directory), the daemon, the hub simulator and the Node ceiling server as child
 * processes (so the load generator never shares an event loop with what it measures), and a
 * child's memory as the kernel counts it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { initialise } from '../src/cli/init.js';
import { openStore } from '../src/cli/open-store.js';
import { type Config, loadConfig } from '../src/config/load.js';
import type { RuntimeInfo } from '../src/daemon.js';
import { HubSimulatorClient } from '../src/hub-sim/client.js';
import type { Store } from '../src/store/store.js';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('bench: cannot find the repository root (no package.json above this file)');
    dir = up;
  }
  return dir;
}

/** The repository root, whether this runs from bench/*.ts (tests) or dist/bench/*.js. */
export const ROOT = findRoot();
/** The built CLI: children always run the compiled daemon, never a TypeScript loader. */
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
export const CEILING_SERVER = join(ROOT, 'dist', 'bench', 'ceiling-server.js');

/** The user unit: the benchmark runs the daemon with the Node options the service runs it with. */
export const UNIT_FILE = join(ROOT, 'systemd', 'eodh-credd.service');

/** The Node flags of the unit's Environment=NODE_OPTIONS=… line (none when it has no such line). */
export function unitNodeFlags(unit = readFileSync(UNIT_FILE, 'utf8')): string[] {
  const line = /^Environment="?NODE_OPTIONS=([^"\n]*)"?$/m.exec(unit);
  return line ? line[1]!.split(' ').filter(Boolean) : [];
}

export type ConfigTables = Record<string, Record<string, string | number | boolean>>;

/** Ephemeral port, no STS (nothing to verify against), JSON logs (what journald would get). */
const BASE_CONFIG: ConfigTables = { server: { port: 0 }, sts: { verify: false }, log: { format: 'json' } };

function toToml(tables: ConfigTables): string {
  return Object.entries(tables)
    .map(([table, values]) =>
      [`[${table}]`, ...Object.entries(values).map(([k, v]) => `${k} = ${JSON.stringify(v)}`)].join('\n'),
    )
    .join('\n\n');
}

/** Variables that would point a child at another installation, or load a TypeScript loader into it. */
const DROPPED_ENV = [
  'EODH_CREDD_CONFIG',
  'CREDENTIALS_DIRECTORY',
  'STATE_DIRECTORY',
  'CONFIGURATION_DIRECTORY',
  'NODE_OPTIONS',
];

/** A whole eodh-credd installation in a temporary directory: config, master key, database. */
export class BenchHome {
  private constructor(
    readonly dir: string,
    readonly env: Readonly<Record<string, string | undefined>>,
    readonly config: Config,
  ) {}

  /** Create and `init` an installation; `tables` is merged over the base config, key by key. */
  static create(tables: ConfigTables = {}): BenchHome {
    const dir = mkdtempSync(join(tmpdir(), 'credd-bench-'));
    const env: Record<string, string | undefined> = { ...process.env };
    for (const name of DROPPED_ENV) delete env[name];
    Object.assign(env, { HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data') });
    const merged: ConfigTables = { ...BASE_CONFIG };
    for (const [table, values] of Object.entries(tables)) merged[table] = { ...merged[table], ...values };
    mkdirSync(join(dir, 'config', 'eodh-credd'), { recursive: true });
    writeFileSync(join(dir, 'config', 'eodh-credd', 'config.toml'), `${toToml(merged)}\n`);
    const config = loadConfig({ env });
    initialise(config, env);
    return new BenchHome(dir, env, config);
  }

  openStore(): Store {
    return openStore(this.config, this.env);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---- children -------------------------------------------------------------------------------

const children = new Set<ChildProcess>();
// A bench that dies half-way must not leave daemons behind.
process.once('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/**
 * Start `node <args>` so that it dies with this process even when this process is killed outright
 * (a test timeout): a shell holds the read end of a pipe from us and SIGKILLs the child once the
 * pipe closes, then execs node in its own place, so child.pid is node's pid.
 */
const DIE_WITH_PARENT = 'exec 3<&0; { read _ <&3; kill -KILL $$; } </dev/null >/dev/null 2>&1 & exec "$0" "$@"';

function launch(
  args: string[],
  env: Readonly<Record<string, string | undefined>>,
  stdio: 'pipe' | number,
): ChildProcess {
  // Never 'inherit' stderr: a child left behind would hold the parent's stderr pipe open.
  const child = spawn('/bin/sh', ['-c', DIE_WITH_PARENT, process.execPath, ...args], {
    env,
    stdio: ['pipe', stdio, stdio === 'pipe' ? 'ignore' : stdio],
  });
  children.add(child);
  child.once('exit', () => {
    children.delete(child);
    child.stdin?.destroy(); // lets the watcher go at once, while the pid is surely not reused
  });
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Generous: these are not measurements, only a guard against a child that never comes up. */
const START_TIMEOUT_MS = 60_000;

/** Start a child that prints its URL as the first line of stdout. */
async function launchListening(
  args: string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<{ child: ChildProcess; url: string }> {
  const child = launch(args, env, 'pipe');
  const lines = createInterface({ input: child.stdout! });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`bench: ${args.join(' ')} printed no URL within ${START_TIMEOUT_MS / 1000} s`)),
        START_TIMEOUT_MS,
      );
      lines.once('line', (line) => {
        clearTimeout(timer);
        resolve(line.trim());
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`bench: ${args.join(' ')} exited (${code}) before printing its URL`));
      });
    });
    lines.on('line', () => {}); // keep draining
    return { child, url };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}

export interface Memory {
  /** Resident set now (VmRSS), MiB. */
  readonly rssMb: number;
  /** Peak resident set so far (VmHWM), MiB. */
  readonly peakMb: number;
  /**
   * The private part of the resident set (RssAnon), MiB: VmRSS also counts the pages of the node
   * binary it has touched (RssFile, about 34 MiB here), which every node process shares.
   */
  readonly anonMb: number;
}

/** A process's memory from /proc/<pid>/status. */
export function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024, anonMb: kb('RssAnon') / 1024 };
}

/** CPU time (user + system) a process has used so far, ms, from /proc/<pid>/stat. */
export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start at field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
  return ticks * (1000 / CLOCK_TICKS);
}

/** USER_HZ: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;

interface Answer {
  readonly status: number;
  readonly body: string;
}

/** One GET on a fresh connection. */
export function get(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`bench: GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export interface DaemonChild {
  readonly pid: number;
  readonly url: string;
  /** From spawn to the first successful GET /healthz, ms. */
  readonly readyMs: number;
  readonly logFile: string;
  memory(): Memory;
  cpuMs(): number;
  stop(): Promise<void>;
}

/** `eodh-credd serve` as a child; resolves once /healthz answers 200. Logs go to <home>/daemon.log. */
export async function spawnDaemon(home: BenchHome, nodeArgs: string[] = []): Promise<DaemonChild> {
  const runtime = join(home.config.paths.dataDir, 'daemon.json');
  rmSync(runtime, { force: true });
  const logFile = join(home.dir, 'daemon.log');
  const fd = openSync(logFile, 'a');
  const started = performance.now();
  const child = launch([...nodeArgs, CLI, 'serve'], home.env, fd);
  closeSync(fd);
  const deadline = started + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = readFileSync(logFile, 'utf8').split('\n').slice(-5).join('\n');
      throw new Error(`bench: the daemon exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tail}`);
    }
    if (performance.now() > deadline) {
      await stopChild(child);
      throw new Error(`bench: the daemon was not ready within ${START_TIMEOUT_MS / 1000} s`);
    }
    const info = readRuntime(runtime);
    if (info && info.pid === child.pid) {
      const health = await get(`${info.url}/healthz`).catch(() => null);
      if (health?.status === 200) {
        const readyMs = performance.now() - started;
        const pid = child.pid!;
        return {
          pid,
          url: info.url,
          readyMs,
          logFile,
          memory: () => memoryOf(pid),
          cpuMs: () => cpuMsOf(pid),
          stop: () => stopChild(child),
        };
      }
    }
    await sleep(2);
  }
}

function readRuntime(file: string): RuntimeInfo | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RuntimeInfo;
  } catch {
    return null; // not written yet, or half-written
  }
}

export interface ListeningChild {
  readonly pid: number;
  readonly url: string;
  memory(): Memory;
  cpuMs(): number;
  stop(): Promise<void>;
}

export interface HubSimChild extends ListeningChild {
  readonly client: HubSimulatorClient;
}

function handle(child: ChildProcess, url: string): ListeningChild {
  const pid = child.pid!;
  return { pid, url, memory: () => memoryOf(pid), cpuMs: () => cpuMsOf(pid), stop: () => stopChild(child) };
}

/** `eodh-credd hub-sim` as a child. */
export async function spawnHubSim(args: string[] = []): Promise<HubSimChild> {
  const env: Record<string, string | undefined> = { ...process.env };
  delete env.NODE_OPTIONS;
  const { child, url } = await launchListening([CLI, 'hub-sim', '--port', '0', ...args], env);
  return { ...handle(child, url), client: new HubSimulatorClient(url) };
}

/** The Node ceiling: a bare node:http server answering a constant JSON body of `bytes` bytes. */
export async function spawnCeiling(bytes: number): Promise<ListeningChild & { readonly readyMs: number }> {
  const env: Record<string, string | undefined> = { ...process.env };
  delete env.NODE_OPTIONS;
  const started = performance.now();
  const { child, url } = await launchListening([CEILING_SERVER, String(bytes)], env);
  const first = await get(url);
  if (first.status !== 200 || Buffer.byteLength(first.body) !== bytes) {
    await stopChild(child);
    throw new Error(`bench: the ceiling server answered ${first.status} with ${Buffer.byteLength(first.body)} bytes`);
  }
  const readyMs = performance.now() - started;
  return { ...handle(child, url), readyMs };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The value at quantile q (0..1) of ascending-sorted values, nearest rank. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

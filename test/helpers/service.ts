/**
 * A whole eodh-credd installation in a temporary directory, driven through the built CLI
 * (dist/src/cli/main.js) as a user would: init, workspace add, serve as a child process.
 * Everything is isolated by HOME/XDG_* variables; children are killed in t's teardown.
 *
 *   const inst = await installation(t, { config: '[renewal]\nrequest_wait_ms = 3000\n' });
 *   await inst.cli(['init']);
 *   const daemon = await inst.serve();       // resolves once /healthz answers
 *   daemon.child.kill('SIGTERM'); await daemon.exited;
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { callDaemon, type DaemonAnswer } from '../../src/cli/daemon-client.js';
import { loadConfig } from '../../src/config/load.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const MAIN = join(ROOT, 'dist/src/cli/main.js');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Served {
  readonly child: ChildProcess;
  readonly url: string;
  readonly port: number;
  /** Everything the daemon wrote so far (JSON log lines on stdout, plus stderr). */
  output(): string;
  /** Parsed JSON log lines so far. */
  logs(): Array<Record<string, unknown>>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolve once a log line matches. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export interface Installation {
  readonly dir: string;
  readonly env: Record<string, string>;
  readonly configFile: string;
  readonly dataDir: string;
  writeConfig(text: string): void;
  cli(args: string[], options?: { input?: string; env?: Record<string, string> }): Promise<CliResult>;
  serve(options?: { env?: Record<string, string>; args?: string[] }): Promise<Served>;
  /** Start `serve` without waiting for it (for a daemon expected to refuse). */
  spawnServe(options?: { env?: Record<string, string> }): ChildProcess;
  adminToken(): string;
  /** A request with the admin token, over the daemon's Unix socket (the admin routes' only way in). */
  admin(path: string, method?: string): Promise<DaemonAnswer>;
}

export const BASE_CONFIG =
  '[server]\nhost = "127.0.0.1"\nport = 0\n\n[sts]\nverify = false\n\n[log]\nformat = "json"\n';

export function installation(t: Test, options: { config?: string } = {}): Installation {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "npm run build" first`);
  const dir = mkdtempSync(join(tmpdir(), 'credd-svc-'));
  const children = new Set<ChildProcess>();
  t.teardown(async () => {
    await Promise.all(
      [...children].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    XDG_CONFIG_HOME: join(dir, 'config'),
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_RUNTIME_DIR: join(dir, 'run'),
    LANG: 'C.UTF-8',
  };
  const configFile = join(dir, 'config', 'eodh-credd', 'config.toml');
  const dataDir = join(dir, 'data', 'eodh-credd');
  mkdirSync(join(dir, 'config', 'eodh-credd'), { recursive: true, mode: 0o700 });
  mkdirSync(env.XDG_RUNTIME_DIR!, { recursive: true, mode: 0o700 });
  const writeConfig = (text: string) => writeFileSync(configFile, text, { mode: 0o600 });
  writeConfig(BASE_CONFIG + (options.config ?? ''));

  const track = (child: ChildProcess) => {
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };

  const cli: Installation['cli'] = (args, opts = {}) =>
    new Promise((resolve, reject) => {
      const child = track(spawn(process.execPath, [MAIN, ...args], { env: { ...env, ...opts.env }, stdio: 'pipe' }));
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin!.end(opts.input ?? '');
    });

  const spawnServe = (opts: { env?: Record<string, string>; args?: string[] } = {}) =>
    track(
      spawn(process.execPath, [MAIN, 'serve', ...(opts.args ?? [])], {
        env: { ...env, ...opts.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );

  const serve: Installation['serve'] = async (opts = {}) => {
    const runtime = join(dataDir, 'daemon.json');
    rmSync(runtime, { force: true });
    const child = spawnServe(opts);
    let out = '';
    const waiters = new Set<() => void>();
    const onData = (d: Buffer) => {
      out += d.toString();
      for (const w of waiters) w();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const logs = () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return {};
          }
        });
    const waitForLog: Served['waitForLog'] = (match, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const hit = logs().find(match);
          if (!hit) return false;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching log line within ${timeoutMs} ms; output:\n${out}`));
        }, timeoutMs);
        if (!check()) waiters.add(check);
      });

    // Generous: on a loaded 2-core machine a cold start of node + fastify + SQLite can take seconds.
    const deadline = Date.now() + 60_000;
    let info: { url: string; port: number } | undefined;
    let up = false;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}:\n${out}`);
      if (existsSync(runtime)) {
        try {
          info = JSON.parse(readFileSync(runtime, 'utf8')) as { url: string; port: number };
          const res = await fetch(`${info.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
          if (res.ok) {
            up = true;
            break;
          }
        } catch {
          // not yet
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!info || !up) {
      // Never leave it behind holding the lock: the next test on this installation would fail too.
      child.kill('SIGKILL');
      await exited;
      throw new Error(`serve did not come up:\n${out}`);
    }
    return { child, url: info.url, port: info.port, output: () => out, logs, exited, waitForLog };
  };

  return {
    dir,
    env,
    configFile,
    dataDir,
    writeConfig,
    cli,
    serve,
    spawnServe,
    adminToken: () => readFileSync(join(dataDir, 'admin-token'), 'utf8').trim(),
    admin: (path, method = 'GET') =>
      callDaemon(loadConfig({ env }), path, {
        method,
        token: readFileSync(join(dataDir, 'admin-token'), 'utf8').trim(),
      }),
  };
}

/** Start a hub simulator, add workspace `ws` with a fresh 30-day key through the CLI. */
export async function addWorkspace(
  inst: Installation,
  hubUrl: string,
  key: { id: string; token: string },
  ws = 'ws',
): Promise<void> {
  const added = await inst.cli(['workspace', 'add', ws, '--hub', hubUrl, '--token-id', key.id], { input: key.token });
  if (added.code !== 0) throw new Error(`workspace add failed (${added.code}): ${added.stderr}`);
}

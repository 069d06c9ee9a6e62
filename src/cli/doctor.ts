/**
 * `eodh-credd doctor [--json]`: one line per check, each failure or warning with its fix. Exits 1
 * when any check fails (warnings do not count).
 *
 * Checks: the configuration parses; every file and directory is owner-only; the master key opens
 * the database; `PRAGMA integrity_check`; the daemon answers; each hub answers (with latency)
 * and its `Date` header agrees with our clock (SigV4 signatures fail beyond 5 min of skew); the
 * port is free or ours; the systemd unit is installed, points at files that exist, and is enabled;
 * nothing shadows the daemon (shadowing.ts: keys or AWS_PROFILE in the environment, a [default]
 * profile with credentials, a static profile hiding a credential_process one of the same name).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type Config, loadConfig } from '../config/load.js';
import { EXIT } from '../core/errors.js';
import { describeCapabilities } from '../core/hub-facts.js';
import { type Clock, systemClock } from '../core/types.js';
import { describeHolder, findPortHolder } from '../server/port-holder.js';
import { openDatabase } from '../store/database.js';
import { StoreError } from '../store/errors.js';
import { assertPrivate } from '../store/files.js';
import { integrityProblems } from '../store/integrity.js';
import { type MasterKeySource, masterKeyLocation, readMasterKey } from '../store/master-key.js';
import { sealingKey } from '../store/seal.js';
import { Store, type WorkspaceStatus } from '../store/store.js';
import { type CliContext, colourFor, print } from './context.js';
import { adminToken, callDaemon, runtimeInfo } from './daemon-client.js';
import { UNIT_NAME, type UnitScope, unitDirectory } from './install-systemd.js';
import { shadows } from './shadowing.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  readonly name: string;
  readonly status: CheckStatus;
  readonly detail: string;
  readonly fix?: string | undefined;
}

export interface DoctorOptions {
  readonly env: CliContext['env'];
  readonly configFile?: string | undefined;
  /** The clock compared with the hubs' (tests shift it to simulate skew). */
  readonly clock?: Clock | undefined;
  /** Where system units live (tests point it elsewhere). */
  readonly systemUnitDir?: string | undefined;
  readonly timeoutMs?: number | undefined;
}

/** Skew at which we warn, and at which SigV4 is about to fail (AWS allows 5 min; keep a margin). */
export const SKEW_WARN_MS = 30_000;
export const SKEW_FAIL_MS = 4 * 60_000;

const ok = (name: string, detail: string): Check => ({ name, status: 'ok', detail });
const warn = (name: string, detail: string, fix?: string): Check => ({ name, status: 'warn', detail, fix });
const fail = (name: string, detail: string, fix?: string): Check => ({ name, status: 'fail', detail, fix });
const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

export async function runDoctor(options: DoctorOptions): Promise<Check[]> {
  const { env } = options;
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const checks: Check[] = [];
  const shadowing = shadows(env);
  const shadowChecks =
    shadowing.length === 0
      ? [ok('shadowing', 'nothing in the environment or ~/.aws takes precedence over the daemon')]
      : shadowing.map((s) => warn(`shadowing: ${s.name}`, s.detail, s.fix));

  let config: Config;
  try {
    config = loadConfig({ explicitFile: options.configFile, env });
    checks.push(
      ok('config', config.fileExists ? `${config.file} is valid` : `no file at ${config.file}; using the defaults`),
    );
  } catch (err) {
    checks.push(fail('config', messageOf(err), 'fix the file, then run "eodh-credd doctor" again'));
    return checks;
  }
  const { paths } = config;

  checks.push(permissions(config, env));

  // The key against the database, read-only: doctor never migrates or writes.
  let hubUrls: string[] = [];
  try {
    let source: MasterKeySource;
    try {
      source = readMasterKey(paths.masterKey, env);
    } catch (err) {
      throw new KeyProblem(err);
    }
    const key = sealingKey(source.key);
    const db = openDatabase({ file: paths.database, key, readonly: true });
    const store = new Store(db, key, clock);
    try {
      checks.push(ok('master key', `${source.origin} opens ${paths.database}`));
      const problems = integrityProblems(db);
      checks.push(
        problems.length === 0
          ? ok('database', 'integrity_check: ok')
          : fail(
              'database',
              `integrity_check: ${problems.join('; ')}`,
              `stop eodh-credd, keep a copy of ${paths.database}, then restore a backup or run "eodh-credd init" anew and add the workspaces again`,
            ),
      );
      hubUrls = [...new Set(store.listWorkspaces().map((w) => w.hubUrl))];
      checks.push(...store.listWorkspaces().map((w) => capabilityCheck(w.name, store.status(w.id))));
    } finally {
      store.close();
    }
  } catch (err) {
    checks.push(
      err instanceof KeyProblem ? fail('master key', messageOf(err.cause), keyFix(err.cause)) : storeCheck(err),
    );
  }

  const info = runtimeInfo(config);
  checks.push(await daemonCheck(config, info, timeoutMs));
  for (const hubUrl of hubUrls)
    checks.push(...(await hubChecks(hubUrl, clock, Math.min(timeoutMs, config.hub.timeout_ms))));
  checks.push(await portCheck(config, info));
  checks.push(...unitChecks(env, options.systemUnitDir ?? '/etc/systemd/system'));
  checks.push(...shadowChecks);
  return checks;
}

/** Reading the master key failed (as opposed to opening the database with it). */
class KeyProblem extends Error {
  constructor(override readonly cause: unknown) {
    super(messageOf(cause));
  }
}

function keyFix(err: unknown): string | undefined {
  return err instanceof StoreError && err.kind === 'missing' ? 'eodh-credd init' : undefined;
}

/** A failure to open the database, blamed on what failed: the key, or the database itself. */
function storeCheck(err: unknown): Check {
  const text = messageOf(err);
  if (err instanceof StoreError) {
    switch (err.kind) {
      case 'wrong_key':
        return fail(
          'master key',
          text,
          'use the key this database was made with (the key file, or $CREDENTIALS_DIRECTORY/master-key under systemd)',
        );
      case 'missing':
        return fail('database', text, 'eodh-credd init');
      case 'empty':
      case 'foreign':
      case 'malformed':
        return fail('database', text, 'stop eodh-credd, then "eodh-credd restore FILE" with a backup (see README)');
      case 'disk_full':
        return fail('database', text, "free some space on the data directory's file system");
      default:
        return fail('database', text);
    }
  }
  return fail('database', text);
}

/** What the hub lets the workspace's key do (#11), as learned from its answers. */
function capabilityCheck(workspace: string, status: WorkspaceStatus): Check {
  const name = `workspace ${workspace}: hub abilities`;
  const detail = `the hub lets its API key ${describeCapabilities(status.capabilities)}`;
  if (status.rotationState === 'needs_user') {
    return warn(
      name,
      `${detail}; rotation needs you`,
      `eodh-credd workspace set-key ${workspace} (with a key from the EODH web UI)`,
    );
  }
  return ok(name, detail);
}

function permissions(config: Config, env: CliContext['env']): Check {
  const { paths } = config;
  if (!existsSync(paths.dataDir))
    return fail('permissions', `no data directory at ${paths.dataDir}`, 'eodh-credd init');
  const targets: Array<[string, 'file' | 'directory', 600 | 700]> = [
    [paths.dataDir, 'directory', 700],
    [paths.tokensDir, 'directory', 700],
    [paths.database, 'file', 600],
    [`${paths.database}-wal`, 'file', 600],
    [`${paths.database}-shm`, 'file', 600],
    [paths.adminToken, 'file', 600],
    [paths.metricsToken, 'file', 600],
  ];
  if (masterKeyLocation(paths.masterKey, env) === paths.masterKey) targets.push([paths.masterKey, 'file', 600]);
  if (existsSync(paths.tokensDir)) {
    for (const name of readdirSync(paths.tokensDir)) targets.push([join(paths.tokensDir, name), 'file', 600]);
  }
  const problems: Array<{ path: string; mode: 600 | 700; message: string }> = [];
  let checked = 0;
  for (const [path, what, mode] of targets) {
    if (!existsSync(path)) continue;
    checked++;
    try {
      assertPrivate(path, what, mode);
    } catch (err) {
      if (!(err instanceof StoreError)) throw err;
      problems.push({ path, mode, message: err.message.split(';')[0]! });
    }
  }
  if (problems.length === 0)
    return ok('permissions', `${checked} files and directories under ${paths.dataDir} are owner-only`);
  const chmods = [600, 700]
    .map((mode) => ({ mode, files: problems.filter((p) => p.mode === mode).map((p) => p.path) }))
    .filter((g) => g.files.length > 0)
    .map((g) => `chmod ${g.mode} ${g.files.join(' ')}`);
  return fail(
    'permissions',
    problems.map((p) => p.message).join('; '),
    `${chmods.join(' && ')} (if someone else may have read them, start over with new keys)`,
  );
}

async function daemonCheck(config: Config, info: ReturnType<typeof runtimeInfo>, timeoutMs: number): Promise<Check> {
  const start = 'start it: systemctl --user start eodh-credd (or run "eodh-credd serve")';
  if (!info) return fail('daemon', 'not running', start);
  const began = performance.now();
  try {
    // Over the Unix socket, where the admin token may go (never TCP).
    const status = await callDaemon(config, '/v1/admin/status', { token: adminToken(config), timeoutMs });
    const ms = Math.round(performance.now() - began);
    if (status.status !== 200) {
      return fail(
        'daemon',
        `${config.paths.socket} refuses this installation's admin token (${status.status})`,
        'restart eodh-credd: systemctl --user restart eodh-credd',
      );
    }
    const health = await fetch(`${info.url}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    await health.body?.cancel();
    if (!health.ok)
      return fail(
        'daemon',
        `${info.url}/healthz answered ${health.status}: another program on that port?`,
        'see its log: journalctl --user -u eodh-credd',
      );
    return ok('daemon', `running (pid ${info.pid}) at ${info.url}, answered in ${ms} ms`);
  } catch (err) {
    return fail(
      'daemon',
      `pid ${info.pid} does not answer at ${info.url} (${messageOf(err)})`,
      'restart it: systemctl --user restart eodh-credd',
    );
  }
}

async function hubChecks(hubUrl: string, clock: Clock, timeoutMs: number): Promise<Check[]> {
  const name = `hub ${hubUrl}`;
  const before = clock.now();
  const began = performance.now();
  let response: Response;
  try {
    response = await fetch(hubUrl, { method: 'HEAD', redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? messageOf(err);
    return [
      fail(
        name,
        `unreachable (${cause})`,
        'check the network (proxy, DNS, firewall) and the hub URL in "eodh-credd workspace list"',
      ),
    ];
  }
  const ms = Math.round(performance.now() - began);
  const after = clock.now();
  const checks = [ok(name, `reachable in ${ms} ms (HTTP ${response.status})`)];
  const date = response.headers.get('date');
  const hubTime = date ? Date.parse(date) : NaN;
  if (Number.isNaN(hubTime)) {
    checks.push(warn(`clock vs ${hubUrl}`, 'the hub sent no usable Date header; cannot compare clocks'));
    return checks;
  }
  // Date has whole seconds: the hub's clock read somewhere in [date, date + 1 s) while we waited.
  const skew = hubTime + 500 - (before + after) / 2;
  const text = `${skew >= 0 ? 'behind' : 'ahead of'} the hub by ${(Math.abs(skew) / 1000).toFixed(1)} s`;
  const fix = 'synchronise the clock (timedatectl set-ntp true); S3 and STS refuse signatures more than 5 min off';
  if (Math.abs(skew) >= SKEW_FAIL_MS) checks.push(fail(`clock vs ${hubUrl}`, `this machine's clock is ${text}`, fix));
  else if (Math.abs(skew) >= SKEW_WARN_MS)
    checks.push(warn(`clock vs ${hubUrl}`, `this machine's clock is ${text}`, fix));
  else checks.push(ok(`clock vs ${hubUrl}`, `within ${Math.max(1, Math.ceil(Math.abs(skew) / 1000))} s of the hub`));
  return checks;
}

async function portCheck(config: Config, info: ReturnType<typeof runtimeInfo>): Promise<Check> {
  const { host, port } = config.server;
  if (info) return ok('port', `${info.port} is ours (pid ${info.pid})`);
  if (port === 0) return ok('port', 'server.port = 0: a free port is picked at start');
  const free = await new Promise<true | string>((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
  if (free === true) return ok('port', `${host}:${port} is free`);
  const holder = free === 'EADDRINUSE' ? findPortHolder(port) : null;
  return fail(
    'port',
    free === 'EADDRINUSE'
      ? `${host}:${port} is in use by ${holder ? describeHolder(holder) : 'another program'}`
      : `cannot listen on ${host}:${port} (${free})`,
    `stop that program (ss -ltnp 'sport = :${port}'), or set server.port in ${config.file}`,
  );
}

/** The words of an ExecStart= line, unquoted and unescaped. */
export function execWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) {
    const raw = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!;
    words.push(raw.replaceAll('%%', '%').replaceAll('$$', '$'));
  }
  return words;
}

function unitChecks(env: CliContext['env'], systemDir: string): Check[] {
  const installed: Array<{ scope: UnitScope; dir: string }> = [
    { scope: 'user' as const, dir: unitDirectory('user', env) },
    { scope: 'system' as const, dir: systemDir },
  ].filter((u) => existsSync(join(u.dir, UNIT_NAME)));
  if (installed.length === 0) {
    return [
      warn(
        'systemd',
        'no eodh-credd unit installed',
        'eodh-credd install-systemd --user (or --system on a shared machine)',
      ),
    ];
  }
  return installed.map(({ scope, dir }) => {
    const file = join(dir, UNIT_NAME);
    const name = `systemd ${scope} unit`;
    const exec = readFileSync(file, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('ExecStart='));
    const words = exec ? execWords(exec.slice('ExecStart='.length)) : [];
    const missing = words.slice(0, 2).filter((w) => !existsSync(w));
    const flag = scope === 'user' ? ' --user' : '';
    if (!exec || missing.length > 0) {
      return fail(
        name,
        `${file} runs ${missing.join(' and ') || 'nothing'}, which does not exist (node or eodh-credd moved?)`,
        `eodh-credd install-systemd${flag}`,
      );
    }
    const wants = join(dir, scope === 'user' ? 'default.target.wants' : 'multi-user.target.wants', UNIT_NAME);
    if (!existsSync(wants))
      return warn(name, `${file} is installed but not enabled`, `systemctl${flag} enable --now eodh-credd`);
    return ok(name, `${file} is installed and enabled`);
  });
}

const LABEL: Record<CheckStatus, string> = { ok: 'OK  ', warn: 'WARN', fail: 'FAIL' };
const COLOUR: Record<CheckStatus, string> = { ok: '32', warn: '33', fail: '31' };

export function renderChecks(checks: readonly Check[], colour: boolean): string[] {
  return checks.map((c) => {
    const label = colour ? `\u001b[${COLOUR[c.status]}m${LABEL[c.status]}\u001b[0m` : LABEL[c.status];
    return `${label} ${c.name}: ${c.detail}${c.fix ? ` → fix: ${c.fix}` : ''}`;
  });
}

export async function run(ctx: CliContext): Promise<number> {
  const checks = await runDoctor({ env: ctx.env, configFile: ctx.configFile });
  if (ctx.options.json === true) print(ctx.stdout, JSON.stringify(checks, null, 2));
  else for (const line of renderChecks(checks, colourFor(ctx, ctx.stdout))) print(ctx.stdout, line);
  return checks.some((c) => c.status === 'fail') ? EXIT.FAILURE : EXIT.OK;
}

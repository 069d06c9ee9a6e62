/**
 * The one skip policy for tests that need something outside Node: the external programs (moto,
 * boto3, AWS CLI v1 and v2, rclone, GDAL, systemd-analyze, script(1)) and machine features (IPv6
 * loopback). Programs are found by absolute path so that a test never runs one in place of
 * another: Debian's awscli puts AWS CLI v2 at /usr/bin/aws while the image's Python (pyenv) has
 * AWS CLI v1 behind a shim of the same name.
 *
 *   if (!requireTool(t, 'AWS CLI v2', awsCliV2(), HINTS.awsV2)) return;
 *   if (!requireFeature(t, 'IPv6 loopback (::1)', await hasIpv6Loopback())) return;
 *
 * Something missing skips the test with the reason; with EODH_CREDD_REQUIRE_ALL_TOOLS=1 (CI) it
 * fails instead, so a green CI run means every case really ran. A test never decides to skip on
 * its own (no `{ skip }` option, no case left out of a list): it asks here.
 *
 * Overrides, for machines that keep the tools elsewhere: EODH_CREDD_PYTHON, EODH_CREDD_AWS_V1,
 * EODH_CREDD_AWS_V2, EODH_CREDD_RCLONE, EODH_CREDD_GDALINFO, EODH_CREDD_OGRINFO,
 * EODH_CREDD_MOTO_SERVER, EODH_CREDD_SYSTEMD_ANALYZE, EODH_CREDD_SCRIPT.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, realpathSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';

/** Anything with tap's `plan` and `fail` (a tap Test). */
export interface ToolHost {
  plan(n: number, comment?: string): void;
  fail(message: string): unknown;
}

export const REQUIRE_ALL_TOOLS = process.env.EODH_CREDD_REQUIRE_ALL_TOOLS === '1';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether the tool at `path` can run. When not, the test is skipped with the reason (its plan
 * becomes 0: call this before any assertion), or fails when EODH_CREDD_REQUIRE_ALL_TOOLS=1.
 * `hint` says how to get the tool.
 */
export function requireTool(t: ToolHost, name: string, path: string | null | undefined, hint?: string): path is string {
  if (path && executable(path)) return true;
  missing(t, `${name} not found${path ? ` at ${path}` : ''}${hint ? ` (${hint})` : ''}`);
  return false;
}

/** Like requireTool, for a feature of the machine rather than a program (`present` says whether it has it). */
export function requireFeature(t: ToolHost, name: string, present: boolean, hint?: string): boolean {
  if (present) return true;
  missing(t, `this machine has no ${name}${hint ? ` (${hint})` : ''}`);
  return false;
}

function missing(t: ToolHost, reason: string): void {
  if (REQUIRE_ALL_TOOLS) {
    t.fail(`${reason}; EODH_CREDD_REQUIRE_ALL_TOOLS=1 makes a missing tool a failure`);
  } else {
    t.plan(0, `skipped: ${reason}`);
  }
}

/** Run a short probe; stdout+stderr, or null when it could not run or failed. */
function probe(command: string, args: readonly string[]): string | null {
  const out = spawnSync(command, args, {
    encoding: 'utf8',
    // A bound on a hang, not on speed: on a loaded machine `aws --version` alone can take 20 s.
    timeout: 120_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/' },
  });
  if (out.error || out.status !== 0) return null;
  return `${out.stdout}${out.stderr}`.trim();
}

/** Every `name` on PATH, in order. */
function onPath(name: string): string[] {
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  return dirs.map((d) => join(d, name)).filter((p) => existsSync(p) && executable(p));
}

/** What pyenv's shim would run, without paying for the shim on every later call. */
function pyenvWhich(name: string): string | null {
  const out = probe('pyenv', ['which', name]);
  const path = out?.split('\n').pop()?.trim();
  return path && executable(path) ? path : null;
}

const cache = new Map<string, string | null>();
function once(key: string, find: () => string | null): string | null {
  if (!cache.has(key)) cache.set(key, find());
  return cache.get(key) ?? null;
}

/** The image's Python (the one with boto3), resolved past pyenv's shim. */
export function python(): string | null {
  return once('python', () => {
    if (process.env.EODH_CREDD_PYTHON) return process.env.EODH_CREDD_PYTHON;
    const candidates = [pyenvWhich('python3'), ...onPath('python3')].filter((p): p is string => p !== null);
    const withBoto3 = candidates.find((p) => probe(p, ['-c', 'import boto3']) !== null) ?? null;
    cache.set('boto3', withBoto3);
    return withBoto3 ?? candidates[0] ?? null;
  });
}

/** The image's Python when it can import boto3, else null (for requireTool). */
export function pythonWithBoto3(): string | null {
  const p = python();
  if (!cache.has('boto3')) cache.set('boto3', p && probe(p, ['-c', 'import boto3']) !== null ? p : null);
  return cache.get('boto3') ?? null;
}

function awsCli(major: 1 | 2, candidates: Array<string | null>): string | null {
  const seen = new Set<string>();
  for (const c of candidates) {
    if (!c || seen.has(c)) continue;
    seen.add(c);
    let real: string;
    try {
      real = realpathSync(c);
    } catch {
      continue;
    }
    // A pyenv shim is a shell script that ends up in some version's bin/: judge what it runs.
    if (probe(real, ['--version'])?.startsWith(`aws-cli/${major}.`)) return c;
  }
  return null;
}

/** AWS CLI v1: the `aws` script that sits beside the image's Python (pyenv), not Debian's. */
export function awsCliV1(): string | null {
  return once('aws1', () => {
    if (process.env.EODH_CREDD_AWS_V1) return process.env.EODH_CREDD_AWS_V1;
    const py = python();
    const besidePython = py ? join(dirname(py), 'aws') : null;
    return awsCli(1, [besidePython, pyenvWhich('aws'), ...onPath('aws')]);
  });
}

/** AWS CLI v2: Debian's awscli package installs it as /usr/bin/aws. */
export function awsCliV2(): string | null {
  return once('aws2', () => {
    if (process.env.EODH_CREDD_AWS_V2) return process.env.EODH_CREDD_AWS_V2;
    return awsCli(2, ['/usr/bin/aws', ...onPath('aws')]);
  });
}

function debianTool(key: string, envName: string, name: string): string | null {
  return once(key, () => process.env[envName] || ([`/usr/bin/${name}`, ...onPath(name)].find(executable) ?? null));
}

export const rclone = (): string | null => debianTool('rclone', 'EODH_CREDD_RCLONE', 'rclone');
export const systemdAnalyze = (): string | null =>
  debianTool('systemd-analyze', 'EODH_CREDD_SYSTEMD_ANALYZE', 'systemd-analyze');
/** script(1), from util-linux: gives a child a pseudo-terminal. */
export const script = (): string | null => debianTool('script', 'EODH_CREDD_SCRIPT', 'script');

/**
 * moto_server, resolved past pyenv's shim (which costs 0.5-1.5 s on every start); .ci/run
 * exports EODH_CREDD_MOTO_SERVER the same way.
 */
export function motoServer(): string | null {
  return once('moto', () => {
    if (process.env.EODH_CREDD_MOTO_SERVER) return process.env.EODH_CREDD_MOTO_SERVER;
    return pyenvWhich('moto_server') ?? onPath('moto_server')[0] ?? null;
  });
}

/** Whether this machine can listen on ::1 (some containers have no IPv6 loopback). */
export function hasIpv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(0, '::1', () => server.close(() => resolve(true)));
  });
}
export const gdalinfo = (): string | null => debianTool('gdalinfo', 'EODH_CREDD_GDALINFO', 'gdalinfo');
export const ogrinfo = (): string | null => debianTool('ogrinfo', 'EODH_CREDD_OGRINFO', 'ogrinfo');

/** The first line a tool prints for `args` (its version), for the test log. */
export function versionOf(path: string, args: readonly string[] = ['--version']): string {
  return probe(path, args)?.split('\n')[0] ?? 'unknown version';
}

/** Hints for requireTool. */
export const HINTS = {
  boto3: 'the image Python with boto3, or set EODH_CREDD_PYTHON',
  awsV1: 'pip install awscli (v1) into the image Python, or set EODH_CREDD_AWS_V1',
  awsV2: 'apt-get install awscli (Debian ships v2 as /usr/bin/aws), or set EODH_CREDD_AWS_V2',
  rclone: 'apt-get install rclone',
  gdal: 'apt-get install gdal-bin',
  moto: 'pip install "moto[server]", or set EODH_CREDD_MOTO_SERVER',
  systemd: 'apt-get install systemd',
  script: 'apt-get install bsdutils',
  python: 'python3 on PATH, or set EODH_CREDD_PYTHON',
} as const;

/**
 * The release tarball (scripts/release.ts, #16): its shrinkwrap holds the production part of
 * package-lock.json and nothing else; a missing file stops the release; and the tarball installs
 * and runs for a non-root user on a clean HOME, as the README says:
 *
 *   npm install -g --prefix ~/.local ./eodh-credd-<version>.tgz
 *
 * The install test runs as root: it creates a throw-away user `credd-rel-<random>` whose HOME and
 * npm cache are new, empty temporary directories, installs the tarball into ~/.local as that user
 * with `--offline` (the dependencies are bundled, at the shrinkwrap's versions), then runs the
 * installed eodh-credd as that user:
 * the version, `init`, a hub simulator, `workspace add`, `serve`, a credential fetched over HTTP
 * the way an AWS SDK does, and `install-systemd --dry-run`, whose unit must point at the install.
 *
 * better-sqlite3's addon: its install script first looks for a prebuilt addon, which it would
 * download from GitHub (not reachable from CI), then compiles one (minutes of a 2-core machine's
 * time). The test hands it the addon this checkout runs on, built for this same Node, as a local
 * prebuild (`npm_config_better_sqlite3_local_prebuilds`), so the real install script runs and
 * unpacks it, offline. Compiling from source with `npm_config_nodedir` is what .ci/run does for
 * each Node it tests.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { type Lockfile, type Manifest, missingFiles, packedManifest, shrinkwrapFrom } from '../../scripts/release.js';
import { HubSimulatorClient } from '../../src/hub-sim/client.js';
import { waitFor } from '../helpers/daemon.js';
import { REQUIRE_ALL_TOOLS } from '../helpers/tools.js';

// Building the tarball and installing it take minutes on a loaded 2-core machine.
t.setTimeout(900_000);

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RELEASE = join(ROOT, 'dist', 'scripts', 'release.js');
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest & {
  devDependencies: Record<string, string>;
};
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as Lockfile;

t.test('the shrinkwrap is the production part of package-lock.json', async (t) => {
  const shrinkwrap = shrinkwrapFrom(lock, manifest);
  t.same(shrinkwrap.packages['']?.dependencies, manifest.dependencies, 'the root lists the dependencies');
  t.equal(shrinkwrap.packages['']?.devDependencies, undefined, 'and no development dependency');
  for (const name of Object.keys(manifest.dependencies ?? {})) {
    t.equal(
      shrinkwrap.packages[`node_modules/${name}`]?.version,
      lock.packages[`node_modules/${name}`]?.version,
      `${name} at the locked version`,
    );
  }
  for (const name of [...Object.keys(manifest.devDependencies), 'typescript']) {
    t.notOk(shrinkwrap.packages[`node_modules/${name}`], `no ${name} (development only)`);
  }
  const dev = Object.entries(lock.packages).filter(([path, e]) => path !== '' && (e.dev || e.devOptional));
  t.ok(dev.length > 0, 'the lock has development packages to leave out');
  t.equal(
    Object.keys(shrinkwrap.packages).length,
    Object.keys(lock.packages).length - dev.length,
    'every other package is kept',
  );
});

t.test('a lock out of step with package.json stops the release', async (t) => {
  const bumped = { ...manifest, dependencies: { ...manifest.dependencies, fastify: '^99.0.0' } };
  t.throws(
    () => shrinkwrapFrom(lock, bumped),
    { name: 'ReleaseError', message: /does not match package\.json for fastify: run npm install/ },
    'a changed range',
  );
  const added = { ...manifest, dependencies: { ...manifest.dependencies, 'left-pad': '^1.0.0' } };
  t.throws(
    () => shrinkwrapFrom(lock, added),
    { name: 'ReleaseError', message: /for left-pad/ },
    'a dependency the lock lacks',
  );
});

t.test(
  'the packed package.json has no development dependencies or scripts, lists the shrinkwrap, bundles the dependencies',
  async (t) => {
    const packed = packedManifest(manifest);
    t.equal(packed.devDependencies, undefined);
    t.equal(packed.scripts, undefined);
    t.same(packed.dependencies, manifest.dependencies);
    t.same(packed.files, [...manifest.files, 'npm-shrinkwrap.json']);
    t.same(packed.bundleDependencies, Object.keys(manifest.dependencies ?? {}), 'every dependency is bundled');
  },
);

t.test('every missing file is named', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'credd-rel-files-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const all = missingFiles(dir, manifest);
  for (const path of [...manifest.files, 'LICENSE', 'CHANGELOG.md', 'systemd/eodh-credd-system.service']) {
    t.ok(all.includes(path), `${path} is reported`);
  }
  t.same(missingFiles(ROOT, manifest), [], 'nothing is missing from the built checkout');
});

t.test('the tarball installs and runs for a non-root user on a clean HOME', async (t) => {
  if (process.getuid?.() !== 0) {
    const reason = 'needs root to create a throw-away user';
    if (REQUIRE_ALL_TOOLS) t.fail(`${reason}; EODH_CREDD_REQUIRE_ALL_TOOLS=1 makes that a failure`);
    else t.plan(0, `skipped: ${reason}`);
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'credd-rel-'));
  chmodSync(work, 0o755);
  t.teardown(() => rmSync(work, { recursive: true, force: true }));

  // The tarball, as `npm run release` makes it (the build is npm test's).
  const built = execFileSync(process.execPath, [RELEASE, '--out', work], { encoding: 'utf8' });
  const tarball = built.trim();
  t.equal(tarball, join(work, `eodh-credd-${manifest.version}.tgz`), 'the release prints the tarball path');
  const listing = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
  for (const path of ['npm-shrinkwrap.json', 'LICENSE', 'CHANGELOG.md', 'systemd/eodh-credd.service'])
    t.ok(listing.includes(`package/${path}`), `the tarball holds ${path}`);

  const prebuilds = join(work, 'prebuilds');
  mkdirSync(prebuilds);
  const sqlite = join(ROOT, 'node_modules', 'better-sqlite3');
  const sqliteVersion = (JSON.parse(readFileSync(join(sqlite, 'package.json'), 'utf8')) as { version: string }).version;
  const prebuild = `better-sqlite3-v${sqliteVersion}-node-v${process.versions.modules}-linux-${process.arch}.tar.gz`;
  execFileSync('tar', ['-czf', join(prebuilds, prebuild), '-C', sqlite, 'build/Release/better_sqlite3.node']);
  chmodSync(join(prebuilds, prebuild), 0o644);

  const user = throwAwayUser(t, join(work, 'home'));
  const prefix = join(user.home, '.local');
  const nodeBin = dirname(process.execPath);
  const baseEnv: Record<string, string> = {
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    PATH: [join(prefix, 'bin'), nodeBin, '/usr/local/bin', '/usr/bin', '/bin'].join(':'),
    LANG: 'C.UTF-8',
    // The machine's trust store and proxy, if it has them: what the user's login would carry.
    ...pass(['NODE_EXTRA_CA_CERTS', 'HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy']),
  };
  const run = (args: string[], options: { env?: Record<string, string>; stdin?: string; timeoutMs?: number } = {}) =>
    runAs(user, args, { ...options, env: { ...baseEnv, ...options.env } });

  const node = await run(['node', '--version']);
  t.equal(node.stdout.trim(), process.version, `the user runs this Node (${process.execPath})`, {
    hint: 'keep the Node under test readable by every user (.ci/run: EODH_CREDD_CI_CACHE)',
  });

  const npmInstall = () =>
    run(
      [
        'npm',
        'install',
        '--global',
        '--prefix',
        prefix,
        '--allow-scripts=better-sqlite3',
        '--offline', // everything is in the tarball
        '--no-audit',
        '--no-fund',
        '--no-update-notifier',
        tarball,
      ],
      {
        env: { npm_config_cache: join(user.home, '.npm'), npm_config_better_sqlite3_local_prebuilds: prebuilds },
        timeoutMs: INSTALL_TIMEOUT_MS,
      },
    );
  let install = await npmInstall();
  if (install.timedOut) {
    // It takes under a minute, but npm has been seen to stall for over ten on a busy machine. A
    // second try from scratch tells a stuck npm from an install that cannot succeed, and the log
    // shows what the first one was doing.
    t.comment(`npm install did not finish in ${INSTALL_TIMEOUT_MS / 1000} s; the user's processes then:`);
    t.comment(install.processes);
    t.comment(install.stderr.split('\n').slice(-40).join('\n'));
    rmSync(prefix, { recursive: true, force: true });
    rmSync(join(user.home, '.npm'), { recursive: true, force: true });
    install = await npmInstall();
  }
  t.equal(install.code, 0, 'npm install -g --prefix ~/.local succeeds', {
    output: install.stdout + install.stderr,
    processes: install.processes,
  });
  if (install.code !== 0) return;

  const installed = join(prefix, 'lib', 'node_modules', 'eodh-credd');
  const shrinkwrap = JSON.parse(readFileSync(join(installed, 'npm-shrinkwrap.json'), 'utf8')) as Lockfile;
  const drift = Object.entries(shrinkwrap.packages)
    .filter(([path]) => path !== '')
    .map(([path, entry]) => {
      const got = installedVersion(join(installed, path));
      return got === entry.version ? null : `${path}: ${got ?? 'not installed'}, shrinkwrap ${entry.version}`;
    })
    .filter((d) => d !== null);
  t.same(drift, [], `all ${Object.keys(shrinkwrap.packages).length - 1} packages at the shrinkwrap's versions`);
  t.notOk(exists(join(installed, 'node_modules', 'tap')), 'no development dependency installed');
  t.equal(statSync(join(installed, 'package.json')).uid, user.uid, 'the install belongs to the user');

  const credd = join(prefix, 'bin', 'eodh-credd');
  const version = await run([credd, '--version']);
  if (version.code === 0) {
    t.match(version.stdout, manifest.version, 'eodh-credd --version');
  } else {
    const help = await run([credd, 'help']);
    t.equal(help.code, 0, 'eodh-credd help', { stderr: help.stderr });
    t.match(help.stdout, /Usage: eodh-credd/);
  }

  const init = await run([credd, 'init']);
  t.equal(init.code, 0, 'eodh-credd init', { stderr: init.stderr });
  const dataDir = join(user.home, '.local', 'share', 'eodh-credd');
  t.equal(statSync(dataDir).mode & 0o777, 0o700, 'the data directory is owner-only');
  t.equal(statSync(dataDir).uid, user.uid, 'and the user owns it');

  // The installed hub simulator and the daemon, each as the user.
  const sim = spawnAs(user, [credd, 'hub-sim', '--port', '0'], baseEnv);
  const simUrl = await firstLine(sim, /http:\/\/\S+/);
  const key = await new HubSimulatorClient(simUrl).createKey('ws', { expiresDays: 30 });
  const configDir = join(user.home, '.config', 'eodh-credd');
  await run(['mkdir', '-p', configDir]);
  const configFile = join(configDir, 'config.toml');
  writeFileSync(configFile, '[server]\nport = 0\n[sts]\nverify = false\n', { mode: 0o600 });
  chownSync(configFile, user.uid, user.gid);
  const add = await run([credd, 'workspace', 'add', 'ws', '--hub', simUrl, '--token-id', key.id], {
    stdin: key.token,
  });
  t.equal(add.code, 0, 'eodh-credd workspace add (key on stdin)', { stderr: add.stderr });

  const serve = spawnAs(user, [credd, 'serve'], baseEnv);
  const serveOutput = collect(serve);
  const runtime = join(dataDir, 'daemon.json');
  const base = await waitFor(
    async () => {
      if (serve.exitCode !== null) throw new Error(`serve exited ${serve.exitCode}: ${serveOutput()}`);
      const { url } = JSON.parse(readFileSync(runtime, 'utf8')) as { url: string };
      const health = await fetch(`${url}/healthz`);
      await health.body?.cancel();
      // The daemon serves its own user only: this (root) process gets 403 forbidden_peer, which
      // shows it is up; the user's own requests follow.
      return health.ok || health.status === 403 ? url : null;
    },
    60_000,
    { what: 'the installed daemon to answer /healthz' },
  );

  const env = await run([credd, 'env', 'ws', '--format', 'json']);
  t.equal(env.code, 0, 'eodh-credd env ws', { stderr: env.stderr });
  const vars = JSON.parse(env.stdout) as Record<string, string>;
  t.match(vars.AWS_CONTAINER_CREDENTIALS_FULL_URI, new RegExp(`^${base}/v1/workspaces/ws/credentials$`));
  // What an AWS SDK does with those variables, as the user.
  const fetched = await run(
    [
      'node',
      '--input-type=module',
      '-e',
      `const token = process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN ?? (await import('node:fs')).readFileSync(process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, 'utf8');
       const res = await fetch(process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI, { headers: { authorization: token } });
       console.log(JSON.stringify({ status: res.status, body: await res.json() }));`,
    ],
    { env: vars },
  );
  t.equal(fetched.code, 0, 'the credential fetch ran', { stderr: fetched.stderr });
  const answer = JSON.parse(fetched.stdout) as { status: number; body: Record<string, string> };
  t.equal(answer.status, 200, 'the daemon serves the S3 credential over HTTP');
  t.match(answer.body, { AccessKeyId: /\S/, SecretAccessKey: /\S/, Token: /\S/, Expiration: /\S/ });
  const token = await run([credd, 'token', 'ws']);
  // With rotation on (the default), the installation minted its own key at `workspace add`.
  const inUse = token.stdout.trim();
  t.match(token.stdout, /^\S+\n$/, 'eodh-credd token ws prints the API key in use, one line');
  const proof = await fetch(`${simUrl}/api/workspaces/ws/me/s3-tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${inUse}` },
  });
  await proof.body?.cancel();
  t.equal(proof.status, 200, 'and the hub accepts it');

  const unit = await run([credd, 'install-systemd', '--user', '--dry-run']);
  t.equal(unit.code, 0, 'eodh-credd install-systemd --user --dry-run', { stderr: unit.stderr });
  t.match(
    unit.stdout,
    `ExecStart=${process.execPath} ${join(installed, 'dist', 'src', 'cli', 'main.js')} serve`,
    'the unit runs the installed package with this Node',
  );
  t.match(unit.stdout, `# ${join(user.home, '.config', 'systemd', 'user', 'eodh-credd.service')}`);
  t.notMatch(unit.stdout, ROOT, 'and nothing of the checkout');

  serve.kill('SIGTERM');
  const [code] = (await once(serve, 'exit')) as [number | null];
  t.equal(code, 0, 'the daemon stops cleanly');
  sim.kill('SIGTERM');
  await once(sim, 'exit');
});

interface User {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  /** Long-running commands started as the user, killed before the user is removed. */
  readonly children: Set<ChildProcess>;
}

/** A new user with an empty HOME at `home`; removed at teardown, after any process it still runs. */
function throwAwayUser(t: Test, home: string): User {
  const name = `credd-rel-${randomBytes(4).toString('hex')}`;
  execFileSync('useradd', ['--no-create-home', '--home-dir', home, '--shell', '/bin/sh', '--user-group', name]);
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }));
  const children = new Set<ChildProcess>();
  t.teardown(async () => {
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
    execFileSync('userdel', [name]);
  });
  mkdirSync(home, { mode: 0o700 });
  chownSync(home, uid, gid);
  return { name, uid, gid, home, children };
}

/** `setpriv` as the user with exactly `env` (env -i), from the user's HOME. */
function asUser(user: User, args: readonly string[], env: Record<string, string>): [string, string[]] {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return [
    'setpriv',
    ['--reuid', String(user.uid), '--regid', String(user.gid), '--clear-groups', '--', 'env', '-i', ...vars, ...args],
  ];
}

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Killed at its time limit. */
  readonly timedOut: boolean;
  /** On a time-out, the user's processes (ps) at that moment: what was stuck. */
  readonly processes: string;
}

/** Each of the two tries; both and the rest of the test stay within tap's 600 s for the file. */
const INSTALL_TIMEOUT_MS = 240_000;

function runAs(
  user: User,
  args: readonly string[],
  options: { env: Record<string, string>; stdin?: string; timeoutMs?: number },
): Promise<Result> {
  const [command, argv] = asUser(user, args, options.env);
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { cwd: user.home, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timedOut = false;
    let processes = '';
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        processes = execFileSync('ps', ['-o', 'pid,ppid,etime,stat,args', '-u', String(user.uid)], {
          encoding: 'utf8',
        });
      } catch (error) {
        processes = `(ps failed: ${(error as Error).message})`;
      }
      // All of the user's processes: an install script left running would hold the pipes open.
      spawnSync('pkill', ['-KILL', '-u', String(user.uid)]);
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut, processes });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.stdin ?? '');
  });
}

/** A long-running command as the user (setpriv and env exec it: the child's pid is the command's). */
function spawnAs(user: User, args: readonly string[], env: Record<string, string>): ChildProcess {
  const [command, argv] = asUser(user, args, env);
  const child = spawn(command, argv, { cwd: user.home, stdio: ['ignore', 'pipe', 'pipe'] });
  user.children.add(child);
  return child;
}

function collect(child: ChildProcess): () => string {
  let text = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (text += d));
  return () => text;
}

/** The first match of `pattern` on the child's stdout; rejects if it exits first. */
function firstLine(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString();
      const match = pattern.exec(text);
      if (!match) return;
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      resolve(match[0]);
    };
    const onExit = (code: number | null) => reject(new Error(`exited (${code}) before printing ${pattern}: ${text}`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

function pass(names: readonly string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((n) => (process.env[n] ? [[n, process.env[n]]] : [])));
}

function installedVersion(dir: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

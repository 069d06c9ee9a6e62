/**
 * Owner-only files: everything the daemon and the CLI create is 0600/0700 whatever the umask, and
 * anything found wider is refused with the path, the mode, the fix, and exit code 77 (EX_NOPERM),
 * by the daemon and by the CLI alike.
 */

import { chmodSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { storageFailure } from '../../src/cli/exit-code.js';
import { loadConfig } from '../../src/config/load.js';
import { startDaemon } from '../../src/daemon.js';
import { memoryLogger } from '../server/fixtures/memory-logger.js';
import { createInstallation, type Installation } from './fixtures/installation.js';

const mode = (path: string) => statSync(path).mode & 0o777;
const quiet = () => memoryLogger('silent').logger;

/** Start the daemon in this process; resolves to the exit code a `serve` would end with (0 when it started). */
async function serveCode(inst: Installation): Promise<{ code: number; message: string }> {
  try {
    const daemon = await startDaemon({ config: loadConfig({ env: inst.env }), env: inst.env, logger: quiet() });
    await daemon.stop();
    return { code: 0, message: '' };
  } catch (err) {
    // As `eodh-credd serve` reports it: storage failures mapped to exit codes in one place.
    const stored = storageFailure(err);
    if (stored) return { code: stored.exitCode, message: stored.message };
    return { code: (err as { exitCode?: number }).exitCode ?? -1, message: (err as Error).message };
  }
}

t.test('everything is created owner-only, even under umask 000', async (t) => {
  const previous = process.umask(0);
  t.teardown(() => {
    process.umask(previous);
  });
  const inst = await createInstallation(t); // init and workspace add in this process, under umask 000
  await inst.addWorkspace('alpha');
  const daemon = await startDaemon({ config: loadConfig({ env: inst.env }), env: inst.env, logger: quiet() });
  const { paths } = inst;
  const expected: Array<[string, number]> = [
    [paths.dataDir, 0o700],
    [paths.tokensDir, 0o700],
    [paths.masterKey, 0o600],
    [paths.database, 0o600],
    [`${paths.database}-wal`, 0o600],
    [`${paths.database}-shm`, 0o600],
    [paths.adminToken, 0o600],
    [join(paths.tokensDir, 'alpha.token'), 0o600],
    [paths.lock, 0o600],
    [join(paths.dataDir, 'daemon.json'), 0o600],
  ];
  for (const [path, want] of expected) {
    t.ok(existsSync(path), `${path} exists`);
    t.equal(mode(path), want, `${path.slice(paths.dataDir.length) || 'data dir'}: ${want.toString(8)}`);
  }
  const listed = readdirSync(paths.dataDir).map((f) => join(paths.dataDir, f));
  for (const path of listed) t.equal(mode(path) & 0o077, 0, `${path}: nothing for group or others`);
  await daemon.stop();
});

t.test(
  'the built CLI and `serve` refuse a 0644 key file and a 0755 data directory: exit 77 and how to fix it',
  async (t) => {
    const inst = await createInstallation(t);
    await inst.addWorkspace('alpha');
    const { paths } = inst;

    chmodSync(paths.masterKey, 0o644);
    for (const args of [['serve'], ['workspace', 'list'], ['status']]) {
      const run = await inst.cli(args);
      t.equal(run.code, 77, `${args.join(' ')}: exit 77`);
      t.match(
        run.stderr,
        `${paths.masterKey}: this file is accessible by other users (mode 0644)`,
        `${args[0]}: names the file and mode`,
      );
      t.match(run.stderr, `chmod 600 ${paths.masterKey}`, `${args[0]}: says how to fix it`);
      t.notMatch(run.stderr, /at .*\.js:\d+/, `${args[0]}: no stack trace`);
    }
    chmodSync(paths.masterKey, 0o600);

    chmodSync(paths.dataDir, 0o755);
    for (const args of [['serve'], ['workspace', 'list']]) {
      const run = await inst.cli(args);
      t.equal(run.code, 77, `${args.join(' ')}: exit 77`);
      t.match(run.stderr, `${paths.dataDir}: this directory is accessible by other users (mode 0755)`);
      t.match(run.stderr, `chmod 700 ${paths.dataDir}`);
    }
    chmodSync(paths.dataDir, 0o700);
    t.equal((await inst.run(['workspace', 'list'])).code, 0, 'fixed: works again');
  },
);

t.test('every other secret-bearing file found wider is refused too', async (t) => {
  const inst = await createInstallation(t);
  await inst.addWorkspace('alpha');
  const { paths } = inst;
  const tokenFile = join(paths.tokensDir, 'alpha.token');
  // The daemon leaves its WAL behind when it is killed; make sure there is one to widen.
  const daemon = await startDaemon({ config: loadConfig({ env: inst.env }), env: inst.env, logger: quiet() });
  await daemon.stop();
  const store = (await import('../../src/cli/open-store.js')).openStore(loadConfig({ env: inst.env }), inst.env);
  const keepOpen = store; // holds the WAL open so it exists while we widen it
  t.teardown(() => keepOpen.close());

  const cases: Array<{ path: string; wide: number; ok: number; what: 'file' | 'directory'; commands: string[][] }> = [
    { path: paths.database, wide: 0o644, ok: 0o600, what: 'file', commands: [['serve'], ['workspace', 'list']] },
    {
      path: `${paths.database}-wal`,
      wide: 0o640,
      ok: 0o600,
      what: 'file',
      commands: [['serve'], ['workspace', 'list']],
    },
    {
      path: `${paths.database}-shm`,
      wide: 0o604,
      ok: 0o600,
      what: 'file',
      commands: [['serve'], ['workspace', 'list']],
    },
    { path: paths.adminToken, wide: 0o644, ok: 0o600, what: 'file', commands: [['serve'], ['refresh', 'alpha']] },
    { path: tokenFile, wide: 0o644, ok: 0o600, what: 'file', commands: [['serve'], ['token', 'alpha']] },
    { path: paths.tokensDir, wide: 0o755, ok: 0o700, what: 'directory', commands: [['serve']] },
  ];
  for (const c of cases) {
    t.ok(existsSync(c.path), `${c.path} exists`);
    chmodSync(c.path, c.wide);
    for (const args of c.commands) {
      const result =
        args[0] === 'serve'
          ? await serveCode(inst)
          : await inst.run(args).then((r) => ({ code: r.code, message: r.stderr }));
      t.equal(
        result.code,
        77,
        `${c.path.slice(paths.dataDir.length)} ${c.wide.toString(8)}: ${args.join(' ')} exits 77`,
      );
      t.match(result.message, `${c.path}: this ${c.what} is accessible by other users (mode 0${c.wide.toString(8)})`);
    }
    chmodSync(c.path, c.ok);
  }
  keepOpen.close();
  t.equal((await serveCode(inst)).code, 0, 'with every mode restored the daemon starts');
});

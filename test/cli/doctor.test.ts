/**
 * doctor against a real installation: a running daemon (child process) and a hub simulator, all
 * OK; then one fault at a time (wrong key file mode, a skewed clock, daemon stopped, port taken
 * by someone else, unit pointing at a missing node).
 */

import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { type Check, execWords, renderChecks, runDoctor, SKEW_FAIL_MS } from '../../src/cli/doctor.js';
import { HubSimulatorClient, startHubSimulator } from '../../src/hub-sim/index.js';
import { addWorkspace, BASE_CONFIG, installation } from '../helpers/service.js';

const sim = await startHubSimulator({});
t.teardown(() => sim.close());
const hub = new HubSimulatorClient(sim.url);
const inst = installation(t);
{
  const init = await inst.cli(['init']);
  if (init.code !== 0) throw new Error(init.stderr);
  await addWorkspace(inst, sim.url, await hub.createKey('ws', { expiresDays: 30 }));
}
const systemUnitDir = join(inst.dir, 'etc-systemd-system'); // no system unit here
// A generous timeout: a daemon on a loaded machine can take seconds to answer, and no check
// here is about slowness (the 5 s default made "does not answer" a matter of load).
const doctor = (clockOffsetMs = 0) =>
  runDoctor({ env: inst.env, systemUnitDir, timeoutMs: 60_000, clock: { now: () => Date.now() + clockOffsetMs } });
const byName = (checks: Check[], prefix: string) => checks.filter((c) => c.name.startsWith(prefix));
const failures = (checks: Check[]) => checks.filter((c) => c.status !== 'ok').map((c) => `${c.name}: ${c.detail}`);

// An installed and enabled user unit, as install-systemd and `systemctl --user enable` leave it.
{
  const r = await inst.cli(['install-systemd', '--user']);
  if (r.code !== 0) throw new Error(r.stderr);
  const dir = join(inst.env.XDG_CONFIG_HOME!, 'systemd', 'user');
  mkdirSync(join(dir, 'default.target.wants'), { recursive: true });
  symlinkSync(join(dir, 'eodh-credd.service'), join(dir, 'default.target.wants', 'eodh-credd.service'));
}

t.test('a healthy installation: every check OK, exit 0', async (t) => {
  const daemon = await inst.serve();
  t.teardown(async () => {
    daemon.child.kill('SIGTERM');
    await daemon.exited;
  });
  const checks = await doctor();
  t.same(failures(checks), [], 'nothing but OK');
  t.same(
    checks.map((c) => c.name),
    [
      'config',
      'permissions',
      'master key',
      'database',
      'daemon',
      `hub ${sim.url}`,
      `clock vs ${sim.url}`,
      'port',
      'systemd user unit',
    ],
    'one line per check',
  );
  t.match(byName(checks, 'hub')[0]?.detail, /^reachable in \d+ ms \(HTTP 404\)$/, 'latency shown');
  t.match(byName(checks, 'daemon')[0]?.detail, `running (pid ${daemon.child.pid})`);
  t.match(byName(checks, 'port')[0]?.detail, `${daemon.port} is ours`);

  const cli = await inst.cli(['doctor']);
  t.equal(cli.code, 0, cli.stderr);
  const lines = cli.stdout.trim().split('\n');
  t.equal(lines.length, checks.length, 'the command prints one line per check');
  t.ok(
    lines.every((l) => l.startsWith('OK   ')),
    cli.stdout,
  );
  t.notMatch(cli.stdout, /\u001b\[/, 'no colour when not on a terminal');
});

t.test('a skewed clock: warning at a minute, failure past SigV4 tolerance', async (t) => {
  const daemon = await inst.serve();
  t.teardown(async () => {
    daemon.child.kill('SIGTERM');
    await daemon.exited;
  });
  const clockCheck = async (offset: number) => byName(await doctor(offset), 'clock vs')[0];
  const minute = await clockCheck(-60_000);
  t.equal(minute?.status, 'warn');
  t.match(minute?.detail, /clock is behind the hub by (59|60|61)\.\d s/);
  const late = await clockCheck(10 * 60_000);
  t.equal(late?.status, 'fail', `${SKEW_FAIL_MS / 60_000} min or more fails`);
  t.match(late?.detail, /ahead of the hub by (599|600|601)\.\d s/);
  t.match(late?.fix, 'timedatectl set-ntp true');
  t.equal((await clockCheck(0))?.status, 'ok');
});

t.test('a key file others can read: permissions fail with the chmod to run, exit 1', async (t) => {
  const keyFile = join(inst.dataDir, 'master-key');
  chmodSync(keyFile, 0o644);
  t.teardown(() => chmodSync(keyFile, 0o600));
  const checks = await doctor();
  const perms = byName(checks, 'permissions')[0];
  t.equal(perms?.status, 'fail');
  t.match(perms?.detail, `${keyFile}: this file is accessible by other users (mode 0644)`);
  t.match(perms?.fix, `chmod 600 ${keyFile}`);
  t.equal(byName(checks, 'master key')[0]?.status, 'fail', 'and the key is refused until then');
  const cli = await inst.cli(['doctor']);
  t.equal(cli.code, 1, 'exit 1');
  t.match(cli.stdout, /^FAIL permissions: .* → fix: chmod 600 /m);
});

t.test('daemon stopped; configured port taken by another program', async (t) => {
  const other = createServer();
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  t.teardown(() => other.close());
  const port = (other.address() as { port: number }).port;
  inst.writeConfig(BASE_CONFIG.replace('port = 0', `port = ${port}`));
  t.teardown(() => inst.writeConfig(BASE_CONFIG));
  const checks = await doctor();
  t.match(byName(checks, 'daemon')[0], { status: 'fail', detail: 'not running' });
  t.match(byName(checks, 'port')[0], {
    status: 'fail',
    detail: `127.0.0.1:${port} is in use by pid ${process.pid} (node) of user root (uid 0)`,
  });
  await new Promise<void>((resolve) => other.close(() => resolve()));
  t.match(byName(await doctor(), 'port')[0], { status: 'ok', detail: `127.0.0.1:${port} is free` });
});

t.test('a unit that points at a node that is gone', async (t) => {
  const file = join(inst.env.XDG_CONFIG_HOME!, 'systemd', 'user', 'eodh-credd.service');
  const original = readFileSync(file, 'utf8');
  t.teardown(() => writeFileSync(file, original));
  writeFileSync(file, original.replace(/^ExecStart=\S+/m, 'ExecStart="/opt/gone node/bin/node"'));
  const unit = byName(await doctor(), 'systemd')[0];
  t.equal(unit?.status, 'fail');
  t.match(unit?.detail, '/opt/gone node/bin/node');
  t.equal(unit?.fix, 'eodh-credd install-systemd --user');
});

t.test('a broken configuration stops the checks at the first line', async (t) => {
  inst.writeConfig('[server]\nport = "x"\n');
  t.teardown(() => inst.writeConfig(BASE_CONFIG));
  const checks = await doctor();
  t.equal(checks.length, 1);
  t.match(checks[0], { name: 'config', status: 'fail', detail: /key "server\.port"/ });
});

t.test('rendering and ExecStart parsing', async (t) => {
  t.same(execWords('"/a b/node" /x/main.js --config /c%%1 serve'), [
    '/a b/node',
    '/x/main.js',
    '--config',
    '/c%1',
    'serve',
  ]);
  const lines = renderChecks([{ name: 'port', status: 'fail', detail: 'taken', fix: 'stop it' }], true);
  t.same(lines, ['\u001b[31mFAIL\u001b[0m port: taken → fix: stop it']);
});

/**
 * `eodh-credd serve` as a real child process: graceful stop on SIGTERM/SIGINT with a request in
 * flight, a second signal, SIGHUP reload (valid and invalid), the single-daemon lock, and the
 * systemd notifications (READY=1, STATUS=, STOPPING=1) received on a real unix datagram socket.
 */

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { HubSimulatorClient, startHubSimulator } from '../../src/hub-sim/index.js';
import { addWorkspace, BASE_CONFIG, installation, MAIN, type Served } from '../helpers/service.js';
import { HINTS, python, requireTool, script } from '../helpers/tools.js';

// Eight daemons start and stop in this file; leave room for a loaded machine beyond .taprc's 180 s.
t.setTimeout(420_000);

/** One installation for the whole file (init and workspace add cost seconds); each test runs its own daemon on it. */
const sim = await startHubSimulator({});
t.teardown(() => sim.close());
const hub = new HubSimulatorClient(sim.url);
const inst = installation(t);
{
  const init = await inst.cli(['init']);
  if (init.code !== 0) throw new Error(`init: ${init.stderr}`);
  await addWorkspace(inst, sim.url, await hub.createKey('ws', { expiresDays: 30 }));
}

async function setup(t: Test) {
  inst.writeConfig(BASE_CONFIG);
  t.teardown(() => hub.setFault('none'));
  return { hub, inst };
}

/** POST an admin refresh: it holds the request open while the daemon waits for the hub. */
function refresh(_daemon: Served) {
  return inst.admin('/v1/admin/workspaces/ws/refresh', 'POST');
}

/**
 * Resolves true as soon as `what()` holds, re-checked on every event of `sources`; false after
 * `timeoutMs` (a bound on a hang, not a timing assertion).
 */
function when(
  sources: Array<{ on(event: string, fn: () => void): unknown; off(event: string, fn: () => void): unknown }>,
  events: string[],
  what: () => boolean,
  timeoutMs = 30_000,
): Promise<boolean> {
  return new Promise((resolve) => {
    const finish = (result: boolean) => {
      clearTimeout(timer);
      for (const s of sources) for (const e of events) s.off(e, check);
      resolve(result);
    };
    const check = () => {
      if (what()) finish(true);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    for (const s of sources) for (const e of events) s.on(e, check);
    check();
  });
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal}: finishes the request in flight, stops, exits 0`, async (t) => {
    const { hub, inst } = await setup(t);
    const daemon = await inst.serve();
    await hub.setFault('slow', { delayMs: 1_500, count: 1 });
    const atHub = sim.state.nextRequest('s3Tokens');
    const inFlight = refresh(daemon);
    await atHub; // the renewal is at the hub, held there for 1.5 s
    const sent = Date.now();
    daemon.child.kill(signal);
    const response = await inFlight;
    t.equal(response.status, 200, 'the request in flight got its answer');
    t.same(response.body, { ok: true });
    const exit = await daemon.exited;
    const stopMs = Date.now() - sent;
    t.same(exit, { code: 0, signal: null }, 'exit code 0 (a stop over 5 s would exit 1)');
    t.comment(`stop took ${stopMs} ms with a 1.5 s hub call in flight`);
    t.ok(
      daemon.logs().some((l) => l.msg === 'stopped'),
      'logged "stopped"',
    );
    t.notOk(existsSync(join(inst.dataDir, 'daemon.json')), 'runtime file removed');
    // The lock went with the process: a new daemon starts on the same state.
    const again = await inst.serve();
    again.child.kill('SIGTERM');
    t.equal((await again.exited).code, 0);
  });
}

t.test('a second signal exits at once', async (t) => {
  const { hub, inst } = await setup(t);
  const daemon = await inst.serve();
  await hub.setFault('slow', { delayMs: 10_000, count: 1 });
  const atHub = sim.state.nextRequest('s3Tokens');
  const inFlight = refresh(daemon).catch((err: unknown) => err);
  await atHub;
  daemon.child.kill('SIGTERM');
  await daemon.waitForLog((l) => l.msg === 'stopping');
  daemon.child.kill('SIGTERM');
  const exit = await daemon.exited;
  t.equal(exit.code, 1, 'exit 1: the stop was cut short');
  t.ok(daemon.logs().some((l) => l.msg === 'second signal: exiting now'));
  await inFlight;
});

t.test('SIGHUP applies a valid configuration without dropping the listener', async (t) => {
  const { inst } = await setup(t);
  const daemon = await inst.serve();
  const config = BASE_CONFIG.replace('port = 0', 'port = 1').replace('[log]\n', '[log]\nlevel = "debug"\n');
  inst.writeConfig(`${config}\n[renewal]\nsweep_schedule = "*/5 * * * * *"\nrequest_wait_ms = 900\n`);
  daemon.child.kill('SIGHUP');
  const reloaded = await daemon.waitForLog((l) => l.msg === 'configuration reloaded');
  t.match(reloaded, { logLevel: 'debug', schedule: '*/5 * * * * *' }, 'new log level and sweep schedule');
  const restart = await daemon.waitForLog((l) => String(l.msg).includes('server.host/server.port'));
  t.match(String(restart.msg), 'restart eodh-credd to listen there', 'a new port needs a restart, and says so');
  t.equal((await fetch(`${daemon.url}/healthz`)).status, 200, 'still listening where it was');
  t.match(readFileSync(join(inst.dataDir, 'daemon.json'), 'utf8'), `"port":${daemon.port}`, 'runtime file unchanged');
  daemon.child.kill('SIGTERM');
  t.equal((await daemon.exited).code, 0);
});

t.test('SIGHUP with an invalid configuration keeps the one in force', async (t) => {
  const { inst } = await setup(t);
  const daemon = await inst.serve();
  inst.writeConfig(`${BASE_CONFIG}\n[renewal]\nsweep_schedul = "oops"\n`);
  daemon.child.kill('SIGHUP');
  const refused = await daemon.waitForLog((l) => String(l.msg).includes('the new configuration is invalid'));
  t.equal(refused.level, 50, 'logged as an error');
  t.match(
    String((refused as { error?: string }).error),
    'unknown key "renewal.sweep_schedul"',
    'says what is wrong, and where',
  );
  t.equal((await fetch(`${daemon.url}/healthz`)).status, 200, 'still serving');
  t.notOk(daemon.logs().some((l) => l.msg === 'configuration reloaded'));
  // A fixed file is taken on the next SIGHUP.
  inst.writeConfig(`${BASE_CONFIG}\n[renewal]\nsweep_schedule = "*/7 * * * * *"\n`);
  daemon.child.kill('SIGHUP');
  const reloaded = await daemon.waitForLog((l) => l.msg === 'configuration reloaded');
  t.equal((reloaded as { schedule?: string }).schedule, '*/7 * * * * *');
  daemon.child.kill('SIGTERM');
  t.equal((await daemon.exited).code, 0);
});

t.test('a second daemon on the same state refuses to start', async (t) => {
  const { inst } = await setup(t);
  const first = await inst.serve();
  const second = inst.spawnServe();
  let stderr = '';
  second.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => second.once('exit', (c) => resolve(c)));
  t.equal(code, 75, 'EX_TEMPFAIL');
  t.match(stderr, /Another eodh-credd is already serving from .*data\/eodh-credd; stop it first/);
  t.equal((await fetch(`${first.url}/healthz`)).status, 200, 'the first one is unharmed');
  t.ok(existsSync(join(inst.dataDir, 'daemon.json')), 'and its runtime file is still there');
  first.child.kill('SIGTERM');
  t.equal((await first.exited).code, 0);
});

// Node cannot bind a unix datagram socket; a few lines of Python play the service manager,
// closing the fds that systemd-notify passes for its barrier as systemd does.
const RECEIVER = `
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    msg, anc, _flags, _addr = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(msg.decode().replace("\\n", "|"), flush=True)
`;

t.test('systemd notifications: READY=1 with STATUS=, STOPPING=1', async (t) => {
  const python3 = python();
  if (!requireTool(t, 'python3 (receives the unix datagrams)', python3, HINTS.python)) return;
  const { inst } = await setup(t);
  const socketPath = join(inst.dir, 'notify.sock');
  const receiver = spawn(python3, ['-c', RECEIVER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void receiver.kill('SIGKILL'));
  let received = '';
  receiver.stdout!.on('data', (d: Buffer) => {
    received += d.toString();
  });
  const until = (what: () => boolean) => when([receiver.stdout!], ['data'], what);
  t.ok(await until(() => received.includes('listening')), 'the receiver is listening');
  const messages = () => received.split('\n').filter((l) => l && l !== 'listening' && l !== 'BARRIER=1');
  const daemon = await inst.serve({ env: { NOTIFY_SOCKET: socketPath } });
  t.ok(await until(() => messages().some((m) => m.startsWith('READY=1'))), 'readiness is announced');
  const ready = messages().find((m) => m.startsWith('READY=1'));
  t.match(ready, /^READY=1\|STATUS=1 workspace, next renewal in \d+ min$/, 'ready, with a status line');
  daemon.child.kill('SIGHUP');
  t.ok(await until(() => messages().includes('RELOADING=1')), 'a reload is announced');
  daemon.child.kill('SIGTERM');
  t.equal((await daemon.exited).code, 0);
  t.ok(await until(() => messages().some((m) => m.startsWith('STOPPING=1'))), 'stopping is announced');
  const stopping = messages().findIndex((m) => m.startsWith('STOPPING=1'));
  t.ok(stopping > messages().indexOf('RELOADING=1'), 'in order');
});

t.test('logs: human-readable on a terminal, JSON lines through a pipe', async (t) => {
  const scriptBin = script();
  if (!requireTool(t, 'script(1) (gives the daemon a terminal)', scriptBin, HINTS.script)) return;
  await setup(t);
  inst.writeConfig(BASE_CONFIG.replace('[log]\nformat = "json"\n', '')); // format "auto"
  // script(1) gives the daemon a pseudo-terminal as stdout.
  const child = spawn(scriptBin, ['-qfec', `${process.execPath} ${MAIN} serve`, '/dev/null'], {
    env: inst.env,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // script(1) puts the daemon in a session of its own, out of reach of a signal to script's
  // process group (and a closing terminal sends it SIGHUP, which it rightly takes as "reload"):
  // stop the daemon itself, by the pid it records.
  let daemonPid: number | undefined;
  const killAll = (signal: NodeJS.Signals) => {
    for (const pid of [daemonPid, -child.pid!]) {
      if (pid === undefined) continue;
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  };
  t.teardown(() => killAll('SIGKILL'));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await when(
    [child.stdout!, child],
    ['data', 'exit'],
    () => out.includes('eodh-credd serving') || child.exitCode !== null,
    60_000,
  );
  t.equal(child.exitCode, null, `serving on a terminal: ${out}`);
  daemonPid = (JSON.parse(readFileSync(join(inst.dataDir, 'daemon.json'), 'utf8')) as { pid: number }).pid;
  process.kill(daemonPid, 'SIGTERM');
  t.equal(await exited, 0, 'stopped cleanly');
  t.throws(() => process.kill(daemonPid!, 0), { code: 'ESRCH' }, 'the daemon itself is gone');
  const plain = out.replace(/\u001b\[[\d;]*m/g, '');
  t.match(plain, /INFO.*eodh-credd serving/, 'a line for a human');
  t.notMatch(plain, /^\{"level"/m, 'not JSON');
  t.match(out, /\u001b\[/, 'in colour');
});

/**
 * The CLI talks to the daemon over its owner-only Unix socket and nothing else (#12): while the
 * daemon is down, another user squatting the TCP port gets neither a client token nor the admin
 * token (the CLI says the daemon is not running, exit 69, and never connects); a socket or data
 * directory someone else could have made is refused; admin routes are not served on TCP.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, lchownSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import t from 'tap';
import { assertTrustedSocket, callDaemon } from '../../src/cli/daemon-client.js';
import { loadConfig } from '../../src/config/load.js';
import { startHubSimulator } from '../../src/hub-sim/app.js';
import { HubSimulatorClient } from '../../src/hub-sim/client.js';
import { clientToken, type Home, makeHome, runCli, startServe } from '../helpers/daemon.js';
import { throwawayUser } from '../helpers/users.js';

const sim = await startHubSimulator({});
t.teardown(() => sim.close());
const hub = new HubSimulatorClient(sim.url);

/** A port nobody holds right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function installation(t: Parameters<typeof makeHome>[0], port: number): Promise<Home> {
  const home = makeHome(t, { config: `[server]\nport = ${port}\n` });
  const init = await runCli(home, ['init']);
  if (init.code !== 0) throw new Error(init.stderr);
  const key = await hub.createKey('ws', { expiresDays: 30 });
  const added = await runCli(home, ['workspace', 'add', 'ws', '--hub', sim.url, '--token-id', key.id], {
    stdin: key.token,
  });
  if (added.code !== 0) throw new Error(added.stderr);
  return home;
}

// Listens on the port and prints every byte any client sends it, base64, one line per chunk.
const SQUATTER = `
const net = require('node:net');
const server = net.createServer((socket) => {
  process.stdout.write('connection\\n');
  socket.on('data', (d) => process.stdout.write('data ' + d.toString('base64') + '\\n'));
  socket.on('error', () => {});
});
server.listen(Number(process.argv[1]), '127.0.0.1', () => process.stdout.write('listening\\n'));
`;

function squat(runAs: readonly string[], port: number): Promise<{ child: ChildProcess; seen(): string }> {
  // Through sh, which drops the NODE_OPTIONS tap gives every child (its hooks write under .tap/).
  const child = spawn(
    '/bin/sh',
    ['-c', 'unset NODE_OPTIONS; exec "$@"', 'sh', ...runAs, process.execPath, '-e', SQUATTER, String(port)],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  );
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.startsWith('listening\n')) resolve({ child, seen: () => out });
    });
    child.once('exit', (code) => reject(new Error(`the squatter exited (${code}) before listening: ${out}`)));
  });
}

t.test('a squatter on the TCP port while the daemon is down gets nothing from the CLI', async (t) => {
  const mallory = throwawayUser(t, 'credd-loc-sq');
  if (!mallory) return;
  const port = await freePort();
  const home = await installation(t, port);
  const squatter = await squat(mallory.runAs, port);
  t.teardown(() => squatter.child.kill('SIGKILL'));

  for (const args of [
    ['token', 'ws'],
    ['credential-process', 'ws'],
    ['refresh', 'ws'],
    ['rotate', 'ws'],
  ]) {
    const r = await runCli(home, args);
    t.equal(r.code, 69, `${args[0]}: exit 69 (daemon not running)`);
    t.match(r.stderr, /The daemon is not running \(no socket at .*daemon\.sock\)/, `${args[0]}: says so`);
    t.equal(r.stdout, '', `${args[0]}: prints nothing the squatter could have made up`);
  }
  const status = await runCli(home, ['status']);
  t.equal(status.code, 3, 'status: exit 3, the daemon is not running');
  t.match(status.stdout, /^Daemon: not running/);

  const exited = new Promise((resolve) => squatter.child.once('exit', resolve));
  squatter.child.kill('SIGTERM');
  await exited;
  const seen = squatter.seen();
  t.equal(seen, 'listening\n', 'the squatter saw no connection at all');
  const adminToken = readFileSync(home.paths.adminToken, 'utf8').trim();
  for (const secret of [clientToken(home, 'ws').trim(), adminToken]) {
    t.notMatch(seen, Buffer.from(secret).toString('base64'), 'no token reached it');
  }
});

t.test('with the daemon up: the CLI goes through the socket; admin routes are not on TCP', async (t) => {
  const home = await installation(t, 0);
  const daemon = await startServe(home, { t });
  const adminToken = readFileSync(home.paths.adminToken, 'utf8').trim();
  const refreshed = await runCli(home, ['refresh', 'ws']);
  t.equal(refreshed.code, 0, refreshed.stderr);
  t.equal((await runCli(home, ['status'])).code, 0, 'status: running, nothing needs attention');
  const viaTcp = await fetch(`${daemon.url}/v1/admin/workspaces/ws/refresh`, {
    method: 'POST',
    headers: { authorization: adminToken },
  });
  t.equal(viaTcp.status, 404, 'the admin token over TCP opens nothing');
  t.equal((await fetch(`${daemon.url}/v1/admin/status`, { headers: { authorization: adminToken } })).status, 404);
  const metrics = await fetch(`${daemon.url}/metrics`, { headers: { authorization: adminToken } });
  t.equal(metrics.status, 401, '/metrics on TCP takes the metrics token, not the admin token');
  const metricsToken = readFileSync(home.paths.metricsToken, 'utf8').trim();
  t.equal((await fetch(`${daemon.url}/metrics`, { headers: { authorization: metricsToken } })).status, 200);
  const config = loadConfig({ env: home.env });
  t.equal(
    (await callDaemon(config, '/metrics', { token: adminToken })).status,
    200,
    'and on the socket the admin token',
  );
  await daemon.stop();
  const after = await runCli(home, ['token', 'ws']);
  t.equal(after.code, 69, 'stopped: not running again');
  t.match(after.stderr, /not running/);
});

t.test('a socket or data directory someone else could have made is refused', async (t) => {
  const mallory = throwawayUser(t, 'credd-loc-so');
  if (!mallory) return;
  const home = await installation(t, 0);
  const daemon = await startServe(home, { t });
  const config = loadConfig({ env: home.env });
  t.doesNotThrow(() => assertTrustedSocket(config), 'ours: trusted');

  lchownSync(config.paths.socket, mallory.uid, mallory.gid);
  const foreign = await runCli(home, ['token', 'ws']);
  t.equal(foreign.code, 77, 'a socket of another user: refused');
  t.match(foreign.stderr, `${config.paths.socket} is not a socket of your own (owner uid ${mallory.uid})`);
  t.equal(foreign.stdout, '');
  lchownSync(config.paths.socket, 0, 0);

  chmodSync(config.paths.dataDir, 0o755);
  const open = await runCli(home, ['token', 'ws']);
  t.equal(open.code, 77, 'a data directory others can enter: refused');
  t.match(open.stderr, 'is not a directory of your own that only you can enter');
  chmodSync(config.paths.dataDir, 0o700);

  t.equal((await runCli(home, ['token', 'ws'])).code, 0, 'put right: served again');
  await daemon.stop();
});

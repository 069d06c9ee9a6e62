/**
 * systemd socket activation (#12): the variables are taken only when meant for this process, and
 * the real daemon serves on the sockets systemd-socket-activate (systemd's own tool) hands it,
 * including a connection made before it had started.
 */
import { execFileSync } from 'node:child_process';
import { connect, createServer } from 'node:net';
import t from 'tap';
import { forgetInheritedSockets, inheritedSockets } from '../../src/server/socket-activation.js';
import { makeHome, readRuntime, runCli, spawnServe } from '../helpers/daemon.js';

t.test('LISTEN_FDS is taken only with a LISTEN_PID naming this process', async (t) => {
  t.same(inheritedSockets({}, 42), { fds: [], ignored: null }, 'no variables: bind by ourselves');
  t.same(inheritedSockets({ LISTEN_FDS: '2', LISTEN_PID: '42' }, 42), { fds: [3, 4], ignored: null });
  t.match(inheritedSockets({ LISTEN_FDS: '2', LISTEN_PID: '41' }, 42), { fds: [], ignored: /not this process/ });
  t.match(inheritedSockets({ LISTEN_FDS: '2' }, 42), { fds: [], ignored: /LISTEN_PID is unset/ });
  t.match(inheritedSockets({ LISTEN_FDS: 'x', LISTEN_PID: '42' }, 42), { fds: [], ignored: /not a socket count/ });
  const env: Record<string, string | undefined> = { LISTEN_FDS: '1', LISTEN_PID: '42', LISTEN_FDNAMES: 'a', X: '1' };
  forgetInheritedSockets(env);
  t.same(env, { X: '1' }, 'children do not see them');
});

function tool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 0;
}

function bindFails(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

/** A raw HTTP/1.1 GET /healthz; resolves with what came back. */
function rawHealthz(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let out = '';
    socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
    const hostHeader = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    socket.write(`GET /healthz HTTP/1.1\r\nHost: ${hostHeader}\r\nConnection: close\r\n\r\n`);
  });
}

t.test(
  'under systemd-socket-activate: the queued first connection is answered, on both loopback sockets',
  {
    skip: tool('systemd-socket-activate')
      ? false
      : 'systemd-socket-activate is not installed (apt-get install systemd)',
  },
  async (t) => {
    const home = makeHome(t);
    t.equal((await runCli(home, ['init'])).code, 0);
    const port = await freePort();
    const daemon = spawnServe(home, {
      t,
      via: [
        'systemd-socket-activate',
        '-l',
        `127.0.0.1:${port}`,
        '-l',
        `[::1]:${port}`,
        ...['HOME', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME'].flatMap((name) => ['-E', name]),
      ],
    });
    // systemd-socket-activate starts the daemon on the first connection; this one waits meanwhile.
    let first = '';
    for (let attempt = 0; !first; attempt++) {
      try {
        first = await rawHealthz('127.0.0.1', port);
      } catch (err) {
        if (attempt > 200 || daemon.hasExited()) throw err;
        await new Promise((r) => setTimeout(r, 25)); // the activator is not listening yet
      }
    }
    t.match(first, /^HTTP\/1\.1 200 /, 'the connection made before the daemon ran was served');
    await daemon.ready();
    t.match(await rawHealthz('::1', port), /^HTTP\/1\.1 200 /, '[::1] is served too');
    const runtime = readRuntime(home, daemon.pid);
    t.equal(runtime?.port, port, 'the daemon reports the port of the sockets it was given');
    t.match(daemon.output(), /eodh-credd serving/);
    t.equal(await bindFails('127.0.0.1', port), 'EADDRINUSE', 'nobody else can bind 127.0.0.1');
    t.equal(await bindFails('::1', port), 'EADDRINUSE', 'nor [::1]');
    const exit = await daemon.stop();
    t.equal(exit.code, 0, 'a clean stop');
  },
);

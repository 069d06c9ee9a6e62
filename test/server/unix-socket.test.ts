/** The daemon's Unix socket: owner-only, stale sockets replaced, nothing else overwritten, requests told apart from TCP. */
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { isUnixSocketRequest, serveUnixSocket } from '../../src/server/unix-socket.js';

const logger = pino({ level: 'silent' });

function get(options: { socketPath: string } | { port: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ ...options, path: '/', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

const handler = (req: Parameters<typeof isUnixSocketRequest>[0], res: import('node:http').ServerResponse) =>
  res.end(isUnixSocketRequest(req) ? 'unix' : 'tcp');

t.test('0600, answers, tells its requests from TCP ones, removes itself on close', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'credd-sock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'daemon.sock');
  writeFileSync(path, ''); // not a socket: refused, left alone
  await t.rejects(serveUnixSocket({ path, handler, logger }), {
    message: `${path}: exists and is not a socket; remove it, then start eodh-credd again.`,
    exitCode: 73,
  });
  rmSync(path);

  // A socket file left behind by a process that is gone (bound, never closed): replaced.
  execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
  t.ok(lstatSync(path).isSocket(), 'a stale socket is there');
  const closing = await serveUnixSocket({ path: join(dir, 'other.sock'), handler, logger });
  await closing.close();
  t.throws(() => lstatSync(join(dir, 'other.sock')), { code: 'ENOENT' }, 'close removes the socket');

  const local = await serveUnixSocket({ path, handler, logger });
  t.teardown(() => local.close());
  const stat = lstatSync(path);
  t.ok(stat.isSocket());
  t.equal(stat.mode & 0o777, 0o600, 'owner-only');
  t.equal(await get({ socketPath: path }), 'unix');

  const tcp = createServer(handler);
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  t.teardown(() => tcp.close());
  t.equal(await get({ port: (tcp.address() as { port: number }).port }), 'tcp', 'a TCP request is not local');
});

t.test('a path longer than a socket address holds', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'credd-sock-')), 'd'.repeat(60), 'e'.repeat(60));
  t.teardown(() => rmSync(dir.split('/d')[0]!, { recursive: true, force: true }));
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'daemon.sock');
  t.ok(Buffer.byteLength(path) > 107);
  const local = await serveUnixSocket({ path, handler, logger });
  t.ok(lstatSync(path).isSocket(), 'the socket is where it was asked to be');
  const { socketAddress } = await import('../../src/config/socket-path.js');
  const address = socketAddress(path);
  t.equal(await get({ socketPath: address.path }), 'unix');
  address.release();
  await local.close();
  t.throws(() => lstatSync(path), { code: 'ENOENT' });
});

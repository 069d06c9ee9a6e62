/**
 * The connection deadlines of the daemon's http server (listener.ts), on a real loopback socket
 * with short limits: a slow client is cut off, a slow answer is not. The deadlines are checked
 * lazily, so each is asserted as a floor (never before its time) and a generous ceiling.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import t, { type Test } from 'tap';
import { type ConnectionLimits, createHttpServer, listenAll } from '../../src/server/listener.js';
import { memoryLogger } from './fixtures/memory-logger.js';

const LIMITS: ConnectionLimits = {
  maxHeaderBytes: 8 * 1024,
  headersTimeoutMs: 300,
  requestTimeoutMs: 600,
  idleTimeoutMs: 400,
};

/** A server that answers "ok", or, for /slow, after `slowMs`. */
async function serve(t: Test, slowMs = 0) {
  const { logger } = memoryLogger('silent');
  const control = { stopping: false };
  const server = createHttpServer(
    (request, response) => {
      const answer = () => response.end('ok');
      if (request.url === '/slow') setTimeout(answer, slowMs);
      else if (request.url === '/big') response.end(Buffer.alloc(BIG_BYTES, 'x'));
      else answer();
    },
    logger,
    LIMITS,
    control,
  );
  const sockets = await listenAll(server, [{ host: '127.0.0.1', port: 0 }], control);
  t.teardown(() => sockets.close());
  return sockets.addresses[0]!.port;
}

/** A raw connection, and when (ms after it opened) the server closed it. */
function open(port: number): { socket: Socket; closed: Promise<number>; received: () => string } {
  const socket = connect(port, '127.0.0.1');
  const started = performance.now();
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(performance.now() - started)));
  return { socket, closed, received: () => text };
}

const ANSWERED = /^HTTP\/1\.1 200 OK/;
/** More than the kernel's socket buffers hold, so the answer waits on the client reading it. */
const BIG_BYTES = 16 * 1024 * 1024;

t.test('no request within the header time: closed then', async (t) => {
  const port = await serve(t);
  const { closed } = open(port);
  const ms = await closed;
  t.ok(ms >= LIMITS.headersTimeoutMs - 20, `closed after ${Math.round(ms)} ms, not before the header time`);
  t.ok(ms < 5_000, 'and not long after it');
});

t.test('headers dripped a line at a time: cut off, though bytes keep coming', async (t) => {
  const port = await serve(t);
  const { socket, closed } = open(port);
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
  const drip = setInterval(() => socket.writable && socket.write('X-Slow: a\r\n'), 50);
  t.teardown(() => clearInterval(drip));
  const ms = await closed;
  t.ok(ms >= LIMITS.headersTimeoutMs - 20 && ms < 5_000, `cut off after ${Math.round(ms)} ms`);
});

t.test('a body that stops arriving is cut off', async (t) => {
  const port = await serve(t);
  const { socket, closed } = open(port);
  socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc');
  const ms = await closed;
  t.ok(ms >= LIMITS.headersTimeoutMs - 20 && ms < 5_000, `cut off after ${Math.round(ms)} ms`);
});

t.test('a kept-alive connection: served again and again, then closed once idle', async (t) => {
  const port = await serve(t);
  const { socket, closed, received } = open(port);
  // Requests spread over several deadline periods: each one restarts the clock.
  for (let i = 0; i < 6; i++) {
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  t.equal(received().match(/HTTP\/1\.1 200 OK/g)?.length, 6, 'every request answered on the one connection');
  const total = await closed;
  t.ok(total < 10_000, `closed ${Math.round(total)} ms after it opened`);
});

t.test('a kept-alive client that then drips its next request is cut off within twice the allowance', async (t) => {
  const port = await serve(t);
  const { socket, closed, received } = open(port);
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.match(received(), ANSWERED);
  const dripStart = performance.now();
  socket.write('GET / HTTP/1.1\r\n');
  // A byte every 100 ms keeps Node's own idle timer from firing: only the deadline stops it.
  const drip = setInterval(() => socket.writable && socket.write('X: y\r\n'), 100);
  t.teardown(() => clearInterval(drip));
  await closed;
  const ms = performance.now() - dripStart;
  const allowance = LIMITS.idleTimeoutMs + LIMITS.headersTimeoutMs;
  t.ok(ms < 2 * allowance + LIMITS.headersTimeoutMs + 2_000, `cut off ${Math.round(ms)} ms into the drip`);
});

t.test('an answer that takes longer than every deadline is still sent', async (t) => {
  const slowMs = 3 * (LIMITS.idleTimeoutMs + LIMITS.headersTimeoutMs);
  const port = await serve(t, slowMs);
  const { socket, received } = open(port);
  socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
  const deadline = performance.now() + slowMs + 5_000;
  while (!ANSWERED.test(received()) && performance.now() < deadline && !socket.destroyed)
    await new Promise((resolve) => setTimeout(resolve, 20));
  t.match(received(), ANSWERED, `answered after ${slowMs} ms on the same connection`);
  socket.destroy();
});

t.test('a client that stops reading its answer is cut off like an idle one', async (t) => {
  const port = await serve(t);
  const { socket, closed, received } = open(port);
  socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
  socket.pause(); // and reads nothing for a while
  const allowance = LIMITS.idleTimeoutMs + LIMITS.headersTimeoutMs;
  await new Promise((resolve) => setTimeout(resolve, 2 * allowance + LIMITS.headersTimeoutMs + 500));
  socket.resume(); // what the kernel still holds arrives, then the end
  await closed;
  t.ok(received().length < BIG_BYTES, `the answer was cut off after ${received().length} of ${BIG_BYTES} bytes`);
});

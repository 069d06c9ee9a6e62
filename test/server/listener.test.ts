/**
 * The listener on its own: what it does with the app behind the fast path (built once, on first
 * need; a failed build is a 500 and is tried again) and with a fast path that throws.
 */

import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import t, { type Test } from 'tap';
import { listen, type RequestHandler } from '../../src/server/listener.js';
import { memoryLogger } from './fixtures/memory-logger.js';

interface Answer {
  readonly status: number;
  readonly body: string;
}

function get(port: number, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Answers /fast itself, throws on /throw, leaves everything else to the app. */
function fastPath(request: IncomingMessage, response: ServerResponse): boolean {
  if (request.url === '/throw') throw new Error('a bug with a SECRET-VALUE in it');
  if (request.url !== '/fast') return false;
  response.end('fast');
  return true;
}

async function start(t: Test, build: () => Promise<RequestHandler>) {
  const { logger, text: logs } = memoryLogger('info');
  let builds = 0;
  const listener = await listen({
    host: '127.0.0.1',
    port: 0,
    logger,
    fastPath,
    buildControl: async () => {
      builds++;
      return { handler: await build(), close: async () => {} };
    },
  });
  t.teardown(() => listener.close());
  return { listener, logs, builds: () => builds };
}

const slowApp = (): Promise<RequestHandler> =>
  new Promise((resolve) => setTimeout(() => resolve((request, response) => response.end(`app:${request.url}`)), 50));

t.test(
  'the app is built once, on the first request the fast path leaves; requests meanwhile wait for it',
  async (t) => {
    const { listener, builds } = await start(t, slowApp);
    t.equal((await get(listener.port, '/fast')).body, 'fast');
    t.equal(builds(), 0, 'not built for the fast path');
    t.equal(listener.controlLoaded(), false);
    const answers = await Promise.all(['/a', '/b', '/c'].map((path) => get(listener.port, path)));
    t.same(
      answers.map((a) => a.body),
      ['app:/a', 'app:/b', 'app:/c'],
      'the three waited for the one build',
    );
    t.equal(builds(), 1);
    t.equal(listener.controlLoaded(), true);
  },
);

t.test('a failed build: 500 with the usual body, the cause in the log, and the next request tries again', async (t) => {
  let fail = true;
  const { listener, logs, builds } = await start(t, async () => {
    if (fail) throw new Error('cannot load the app');
    return (_request, response) => response.end('app');
  });
  const failed = await get(listener.port, '/x');
  t.equal(failed.status, 500);
  t.same(JSON.parse(failed.body), {
    code: 'internal',
    message: 'Internal error.',
    Code: 'internal',
    Message: 'Internal error.',
  });
  t.match(logs(), 'cannot load the app');
  fail = false;
  t.equal((await get(listener.port, '/x')).body, 'app');
  t.equal(builds(), 2);
});

t.test('a fast path that throws: that request gets a 500, the daemon keeps serving', async (t) => {
  const { listener, logs } = await start(t, slowApp);
  const failed = await get(listener.port, '/throw');
  t.equal(failed.status, 500);
  t.notMatch(failed.body, /SECRET|bug/);
  t.match(logs(), 'request failed');
  t.equal((await get(listener.port, '/fast')).body, 'fast', 'still serving');
});

/**
 * The server as the daemon runs it: the listener, the fast path in front, the fastify app behind,
 * built on first use. The fast path must answer exactly as the app does (app.test.ts pins the
 * app's answers), must answer valid clients without ever building the app, and must leave every
 * other request to it.
 */

import { Agent, request as httpRequest } from 'node:http';
import t, { type Test } from 'tap';
import type { AuthResult, CredentialSource } from '../../src/core/source.js';
import type { ApiKey, S3Credentials } from '../../src/core/types.js';
import { buildApp } from '../../src/server/app.js';
import { HostPolicy } from '../../src/server/hosts.js';
import type { ConnectionLimits } from '../../src/server/listener.js';
import { startServer } from '../../src/server/server.js';
import { memoryLogger } from './fixtures/memory-logger.js';
import { SECRET, SESSION, sampleApiKey, sampleCredentials, TOKEN } from './fixtures/sample.js';

interface State {
  creds: S3Credentials | null;
  apiKey: ApiKey | null;
  throws: Error | null;
  /** Whether freshCredentials() has the credential (the synchronous answer) or credentials() must renew. */
  fresh: boolean;
  /** A renewal that takes until this settles. */
  renewal: Promise<void> | null;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, unknown>;
  readonly body: string;
}

/** Headers whose values must match between the two ways in (date, connection etc. may differ). */
const COMPARED_HEADERS = ['content-type', 'content-length', 'cache-control', 'x-content-type-options'];

async function setUp(t: Test, limits?: Partial<ConnectionLimits>) {
  const state: State = {
    creds: { ...sampleCredentials(), accountId: '123456789012' },
    apiKey: sampleApiKey(),
    throws: null,
    fresh: true,
    renewal: null,
  };
  const calls = { fresh: 0, renewing: 0 };
  const source: CredentialSource = {
    authenticate: (workspace: string, token: string): AuthResult =>
      workspace === 'alpha' && token === TOKEN
        ? { ok: true, clientTokenId: 'ct-alpha' }
        : { ok: false, code: 'unauthorized' },
    freshCredentials: () => {
      calls.fresh++;
      if (state.throws) throw state.throws;
      return state.fresh ? state.creds : null;
    },
    credentials: async () => {
      calls.renewing++;
      await state.renewal;
      if (state.throws) throw state.throws;
      return state.creds;
    },
    apiKey: () => state.apiKey,
  };
  const { logger, text: logs } = memoryLogger('trace');
  const hosts = new HostPolicy('127.0.0.1');
  const served: string[] = [];
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    limits,
    source,
    hosts,
    logger,
    onServed: (ws) => served.push(ws),
  });
  t.teardown(() => server.close());
  hosts.setPort(server.port);
  const host = `127.0.0.1:${server.port}`;

  // The same app, reached by inject() with the same Host: the reference answers.
  const reference = await buildApp({ source, hosts, logger: memoryLogger('silent').logger });
  t.teardown(() => reference.close());

  const viaServer = (url: string, headers: Record<string, string>, method = 'GET') =>
    new Promise<Answer>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: server.port, path: url, method, headers: { host, ...headers }, agent: false },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  const viaApp = async (url: string, headers: Record<string, string>, method = 'GET'): Promise<Answer> => {
    const reply = await reference.inject({ method: method as 'GET', url, headers: { host, ...headers } });
    return { status: reply.statusCode, headers: reply.headers, body: reply.body };
  };
  return { state, calls, server, served, logs, viaServer, viaApp };
}

function pick(headers: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(COMPARED_HEADERS.map((name) => [name, headers[name]]));
}

const auth = { authorization: TOKEN };

t.test('valid clients are answered by the fast path, byte for byte as the app answers', async (t) => {
  const { state, calls, server, served, viaServer, viaApp } = await setUp(t);
  const cases: Array<[string, string, Record<string, string>, string]> = [
    ['credentials', '/v1/workspaces/alpha/credentials', auth, 'GET'],
    ['credentials, HEAD', '/v1/workspaces/alpha/credentials', auth, 'HEAD'],
    ['credentials, Bearer', '/v1/workspaces/alpha/credentials', { authorization: `Bearer ${TOKEN}` }, 'GET'],
    ['API key', '/v1/workspaces/alpha/token', auth, 'GET'],
    ['health', '/healthz', {}, 'GET'],
  ];
  for (const fresh of [true, false]) {
    state.fresh = fresh;
    for (const [what, url, headers, method] of cases) {
      const label = `${what} (${fresh ? 'held' : 'renewing'})`;
      const ours = await viaServer(url, headers, method);
      const theirs = await viaApp(url, headers, method);
      t.equal(ours.status, 200, label);
      t.same(
        { status: ours.status, body: ours.body, ...pick(ours.headers) },
        { status: theirs.status, body: theirs.body, ...pick(theirs.headers) },
        label,
      );
    }
  }
  t.ok(calls.fresh > 0 && calls.renewing > 0, 'both the synchronous and the renewing answer were exercised');
  t.equal(server.controlLoaded(), false, 'the app behind the fast path was never built');
  t.equal(served.length, 4, 'each GET of a credential counted, HEAD not');
});

t.test('everything else goes to the app, which refuses it as app.test.ts and guard.test.ts expect', async (t) => {
  const { server, viaServer, viaApp } = await setUp(t);
  const cases: Array<[string, string, Record<string, string>, string]> = [
    ['no token', '/v1/workspaces/alpha/credentials', {}, 'GET'],
    ['wrong token', '/v1/workspaces/alpha/credentials', { authorization: 'wrong' }, 'GET'],
    ['another workspace', '/v1/workspaces/beta/credentials', auth, 'GET'],
    ['bad name', '/v1/workspaces/Alpha/credentials', auth, 'GET'],
    ['a browser', '/v1/workspaces/alpha/credentials', { ...auth, origin: 'https://evil.example' }, 'GET'],
    ['a hostile Host', '/v1/workspaces/alpha/credentials', { ...auth, host: 'evil.example' }, 'GET'],
    ['POST', '/v1/workspaces/alpha/credentials', auth, 'POST'],
    ['unknown route', '/v1/nothing', auth, 'GET'],
    ['health with a query', '/healthz?x=1', {}, 'GET'],
  ];
  for (const [what, url, headers, method] of cases) {
    const ours = await viaServer(url, headers, method);
    const theirs = await viaApp(url, headers, method);
    t.same(
      { status: ours.status, body: ours.body, ...pick(ours.headers) },
      { status: theirs.status, body: theirs.body, ...pick(theirs.headers) },
      what,
    );
  }
  t.equal(server.controlLoaded(), true, 'the app was built for them');
});

t.test('percent-encoding and query strings are left to the app, which still serves them', async (t) => {
  const { viaServer } = await setUp(t);
  const encoded = await viaServer('/v1/workspaces/%61lpha/credentials', auth);
  t.equal(encoded.status, 200);
  t.match(JSON.parse(encoded.body), { AccessKeyId: 'ASIAEXAMPLEKEYID1234' });
});

t.test('no credential, or a failure inside: the same errors, nothing leaked, the app not needed', async (t) => {
  const { state, server, logs, viaServer, viaApp } = await setUp(t);
  state.creds = null;
  state.apiKey = null;
  state.fresh = false;
  for (const url of ['/v1/workspaces/alpha/credentials', '/v1/workspaces/alpha/token']) {
    const ours = await viaServer(url, auth);
    t.equal(ours.status, 503, url);
    t.equal(ours.body, (await viaApp(url, auth)).body, url);
  }
  state.creds = null;
  state.throws = new Error(`database said ${SECRET} at /work/x.ts:12`);
  const failed = await viaServer('/v1/workspaces/alpha/credentials', auth);
  t.equal(failed.status, 500);
  t.same(JSON.parse(failed.body), {
    code: 'internal',
    message: 'Internal error.',
    Code: 'internal',
    Message: 'Internal error.',
  });
  t.match(logs(), 'request failed');
  t.notMatch(logs(), TOKEN, 'the request headers are not logged');
  t.equal(server.controlLoaded(), false);
});

t.test('one audit line per credential and client, whichever way the requests went', async (t) => {
  const { logs, viaServer } = await setUp(t);
  await viaServer('/v1/workspaces/alpha/credentials', auth);
  await viaServer('/v1/workspaces/%61lpha/credentials', auth); // through the app
  await viaServer('/v1/workspaces/alpha/credentials', auth);
  const lines = logs()
    .split('\n')
    .filter((l) => l.includes('"audit":true'));
  t.equal(lines.length, 1, lines.join('\n'));
  for (const secret of [SECRET, SESSION, TOKEN]) t.notMatch(logs(), secret);
});

// A stop that waited for the client's keep-alive (ten minutes here) would time this test out.
t.test(
  'a graceful stop: an answer in flight finishes, then its keep-alive connection is closed',
  { timeout: 30_000 },
  async (t) => {
    const { state, server } = await setUp(t, { idleTimeoutMs: 600_000 });
    let finishRenewal = () => {};
    state.fresh = false;
    state.renewal = new Promise<void>((resolve) => (finishRenewal = resolve));
    const agent = new Agent({ keepAlive: true });
    t.teardown(() => agent.destroy());
    let socketClosed: Promise<void> | undefined;
    const inFlight = new Promise<{ status: number; connection: unknown }>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: server.port,
          path: '/v1/workspaces/alpha/credentials',
          headers: { host: `127.0.0.1:${server.port}`, ...auth },
          agent,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
        },
      );
      req.on('socket', (socket) => (socketClosed = new Promise((resolve) => socket.once('close', () => resolve()))));
      req.on('error', reject);
      req.end();
    });
    while ((await new Promise<number>((r) => server.server.getConnections((_e, n) => r(n)))) === 0) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 20)); // the request is with credentials() now
    const closing = server.close();
    finishRenewal();
    const answer = await inFlight;
    t.equal(answer.status, 200, 'the answer in flight was sent');
    t.equal(answer.connection, 'keep-alive', 'a keep-alive answer: the connection stays open after it…');
    await closing;
    t.equal(server.server.listening, false, '…yet the stop completed');
    await socketClosed;
    t.pass('the server closed the idle connection');
  },
);

/**
 * The server as the daemon runs it: the app on real loopback sockets (127.0.0.1 and its twin
 * [::1]), against a stub CredentialSource whose behaviour each test chooses, with the real peer
 * check (the test process is on both ends, so the peer is this process's own uid).
 */

import { Agent, request as httpRequest } from 'node:http';
import t, { type Test } from 'tap';
import type { AuthResult, CredentialSource } from '../../src/core/source.js';
import type { ApiKey, S3Credentials } from '../../src/core/types.js';
import { HostPolicy } from '../../src/server/hosts.js';
import type { ConnectionLimits } from '../../src/server/listener.js';
import { startServer } from '../../src/server/server.js';
import { tokenDigest } from '../../src/store/client-tokens.js';
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
  /** Other users allowed on workspace routes. */
  allowed: ReadonlySet<number>;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, unknown>;
  readonly body: string;
}

const OWN_UID = process.getuid?.() ?? 0;

async function setUp(t: Test, options: { limits?: Partial<ConnectionLimits>; ownUid?: number } = {}) {
  const state: State = {
    creds: { ...sampleCredentials(), accountId: '123456789012' },
    apiKey: sampleApiKey(),
    throws: null,
    fresh: true,
    renewal: null,
    allowed: new Set(),
  };
  const calls = { fresh: 0, renewing: 0 };
  const source: CredentialSource = {
    authenticate: (workspace: string, digest: Buffer): AuthResult =>
      workspace === 'alpha' && digest.equals(tokenDigest(TOKEN))
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
    allowedUids: () => state.allowed,
  };
  const { logger, text: logs } = memoryLogger('trace');
  const hosts = new HostPolicy('127.0.0.1');
  const served: string[] = [];
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    limits: options.limits,
    source,
    hosts,
    logger,
    onServed: (ws) => served.push(ws),
    peers: options.ownUid === undefined ? undefined : { ownUid: options.ownUid },
  });
  t.teardown(() => server.close());
  hosts.setPort(server.port);

  const get = (url: string, headers: Record<string, string>, method = 'GET', address = '127.0.0.1') =>
    new Promise<Answer>((resolve, reject) => {
      const host = `${address.includes(':') ? `[${address}]` : address}:${server.port}`;
      const req = httpRequest(
        { host: address, port: server.port, path: url, method, headers: { host, ...headers }, agent: false },
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
  return { state, calls, server, served, logs, get };
}

const auth = { authorization: TOKEN };

t.test('valid clients, held or renewing: 200, the common headers, HEAD without a body', async (t) => {
  const { state, calls, served, get } = await setUp(t);
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
      const answer = await get(url, headers, method);
      t.equal(answer.status, 200, label);
      t.match(answer.headers, { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }, label);
      t.match(String(answer.headers['content-type']), /^application\/json/, label);
      if (method === 'HEAD') t.equal(answer.body, '', label);
      else if (url.endsWith('/credentials'))
        t.same(Object.keys(JSON.parse(answer.body)).sort(), [
          'AccessKeyId',
          'AccountId',
          'Expiration',
          'SecretAccessKey',
          'Token',
        ]);
    }
  }
  t.ok(calls.fresh > 0 && calls.renewing > 0, 'both the synchronous and the renewing answer were exercised');
  t.equal(served.length, 4, 'each GET of a credential counted, HEAD not');
});

t.test('the IPv6 loopback twin is bound on the same port and serves alike', async (t) => {
  const { server, get } = await setUp(t);
  t.same(
    server.addresses.map((a) => a.address),
    ['127.0.0.1', '::1'],
  );
  t.equal(server.addresses[1]?.port, server.port);
  const answer = await get('/v1/workspaces/alpha/credentials', auth, 'GET', '::1');
  t.equal(answer.status, 200);
  t.equal(answer.headers['cache-control'], 'no-store');
});

t.test('percent-encoded ASCII in the path is served', async (t) => {
  const { get } = await setUp(t);
  const encoded = await get('/v1/workspaces/%61lpha/credentials', auth);
  t.equal(encoded.status, 200);
  t.match(JSON.parse(encoded.body), { AccessKeyId: 'ASIAEXAMPLEKEYID1234' });
});

t.test('no credential, or a failure inside: 503 / 500, nothing leaked', async (t) => {
  const { state, logs, get } = await setUp(t);
  state.creds = null;
  state.apiKey = null;
  state.fresh = false;
  for (const url of ['/v1/workspaces/alpha/credentials', '/v1/workspaces/alpha/token']) {
    const answer = await get(url, auth);
    t.equal(answer.status, 503, url);
    t.match(JSON.parse(answer.body), { code: 'no_credentials' });
  }
  for (const held of [false, true]) {
    state.fresh = held;
    state.throws = new Error(`database said ${SECRET} at /work/x.ts:12`);
    const failed = await get('/v1/workspaces/alpha/credentials', auth);
    t.equal(failed.status, 500);
    t.same(JSON.parse(failed.body), {
      code: 'internal',
      message: 'Internal error.',
      Code: 'internal',
      Message: 'Internal error.',
    });
  }
  t.match(logs(), 'request failed');
  t.notMatch(logs(), TOKEN, 'the request headers are not logged');
  state.throws = null;
  state.creds = sampleCredentials();
  t.equal((await get('/v1/workspaces/alpha/credentials', auth)).status, 200, 'still serving');
});

t.test('one audit line per credential and client, however the path was spelled', async (t) => {
  const { logs, get } = await setUp(t);
  await get('/v1/workspaces/alpha/credentials', auth);
  await get('/v1/workspaces/%61lpha/credentials', auth);
  await get('/v1/workspaces/alpha/credentials', auth);
  const lines = logs()
    .split('\n')
    .filter((l) => l.includes('"audit":true'));
  t.equal(lines.length, 1, lines.join('\n'));
  for (const secret of [SECRET, SESSION, TOKEN]) t.notMatch(logs(), secret);
});

t.test('a connection from a user not allowed: 403 on every route, whatever the token, and an audit line', async (t) => {
  // The daemon believes it runs as another uid: this process is then "another user".
  const { state, logs, get } = await setUp(t, { ownUid: OWN_UID + 1 });
  for (const [url, headers] of [
    ['/v1/workspaces/alpha/credentials', auth],
    ['/v1/workspaces/alpha/token', auth],
    ['/healthz', {}],
    ['/v1/admin/status', auth],
    ['/nothing', {}],
  ] as const) {
    const answer = await get(url, headers);
    t.equal(answer.status, 403, url);
    t.match(JSON.parse(answer.body), { code: 'forbidden_peer' }, url);
    t.notMatch(answer.body, /SecretAccessKey|the-api-key/);
  }
  const audit = logs()
    .split('\n')
    .filter((l) => l.includes('"audit":true') && l.includes('user not allowed'));
  t.ok(audit.length >= 1, 'the refusal is in the audit trail');
  t.match(JSON.parse(audit[0]!), { uid: OWN_UID, code: 'forbidden_peer' });

  // The credential source's allow list opens that workspace's routes to this uid, nothing else.
  state.allowed = new Set([OWN_UID]);
  t.equal((await get('/v1/workspaces/alpha/credentials', auth)).status, 200, 'allowed for the workspace');
  t.equal((await get('/v1/workspaces/alpha/credentials', {})).status, 401, 'and still needs the token');
  t.equal((await get('/v1/admin/status', auth)).status, 403, 'admin routes stay the daemon user’s');
  t.equal((await get('/healthz', {})).status, 403);
});

// A stop that waited for the client's keep-alive (ten minutes here) would time this test out.
t.test(
  'a graceful stop: an answer in flight finishes, then its keep-alive connection is closed',
  { timeout: 30_000 },
  async (t) => {
    const { state, calls, server } = await setUp(t, { limits: { idleTimeoutMs: 600_000 } });
    let finishRenewal = () => {};
    state.fresh = false;
    state.renewal = new Promise<void>((resolve) => (finishRenewal = resolve));
    const agent = new Agent({ keepAlive: true });
    t.teardown(() => agent.destroy());
    let socketClosed: Promise<void> | undefined;
    const before = calls.renewing;
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
    // The request is with credentials() once the stub has been called.
    while (calls.renewing === before) await new Promise((r) => setImmediate(r));
    const closing = server.close();
    finishRenewal();
    const answer = await inFlight;
    t.equal(answer.status, 200, 'the answer in flight was sent');
    t.equal(answer.connection, 'keep-alive', 'a keep-alive answer: the connection stays open after it…');
    await closing;
    t.equal(server.server.listening, false, 'the stop completed');
    await socketClosed;
    t.pass('the server closed the connection');
  },
);

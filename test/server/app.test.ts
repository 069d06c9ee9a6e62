/**
 * The app's routes, response schemas, error handling and audit trail, against a stub
 * CredentialSource whose behaviour each test chooses. inject() for speed; the guards, and the
 * headers the http server adds to every answer, are tested through real sockets in guard.test.ts.
 */
import t, { type Test } from 'tap';
import type { AuthResult, CredentialSource } from '../../src/core/source.js';
import type { ApiKey, S3Credentials } from '../../src/core/types.js';
import { buildApp } from '../../src/server/app.js';
import { HostPolicy } from '../../src/server/hosts.js';
import { tokenDigest } from '../../src/store/client-tokens.js';
import { memoryLogger } from './fixtures/memory-logger.js';
import { SECRET, SESSION, sampleApiKey, sampleCredentials, TOKEN } from './fixtures/sample.js';

const ADMIN = 'the-admin-token';

interface Stub {
  creds: (S3Credentials & Record<string, unknown>) | null;
  apiKey: ApiKey | null;
  throws: Error | null;
}

async function build(t: Test, stub: Partial<Stub> = {}, withAdmin = true, local = true) {
  const state: Stub = {
    creds: { ...sampleCredentials() },
    apiKey: sampleApiKey(),
    throws: null,
    ...stub,
  };
  const source: CredentialSource = {
    authenticate: (workspace: string, digest: Buffer): AuthResult =>
      workspace === 'alpha' && digest.equals(tokenDigest(TOKEN))
        ? { ok: true, clientTokenId: 'ct-alpha' }
        : { ok: false, code: 'unauthorized' },
    freshCredentials: () => null,
    credentials: async () => {
      if (state.throws) throw state.throws;
      return state.creds;
    },
    apiKey: () => state.apiKey,
  };
  const { logger, text: logs } = memoryLogger('trace');
  const hosts = new HostPolicy('127.0.0.1');
  hosts.setPort(80); // inject() sends Host: localhost:80
  const { fastify: app } = await buildApp({
    source,
    hosts,
    logger,
    peers: { ownUid: 1000, uidOf: () => 1000 },
    admin: withAdmin
      ? {
          tokenHash: tokenDigest(ADMIN),
          // inject() has no socket to tell apart: every request counts as come over the Unix socket.
          isLocal: () => local,
          actions: {
            refresh: async () => ({ ok: false, error: 'the hub said no' }),
            rotate: async () => ({ ok: true }),
            snapshot: () => [{ workspace: 'alpha' }],
          },
        }
      : undefined,
  });
  t.teardown(() => app.close());
  const get = (
    url: string,
    headers: Record<string, string> = { authorization: TOKEN },
    method: 'GET' | 'HEAD' | 'POST' = 'GET',
  ) => app.inject({ method, url, headers });
  return { app, state, get, logs };
}

t.test('credentials: exactly the container-credentials fields, whatever the source adds', async (t) => {
  const { get, state } = await build(t);
  state.creds = { ...state.creds!, extra: 'LEAKED-FIELD', apiKey: 'LEAKED-KEY', SessionToken: 'LEAKED-SESSION' };
  const reply = await get('/v1/workspaces/alpha/credentials');
  t.equal(reply.statusCode, 200);
  t.same(reply.json(), {
    AccessKeyId: 'ASIAEXAMPLEKEYID1234',
    SecretAccessKey: SECRET,
    Token: SESSION,
    Expiration: '2026-05-01T12:34:56Z',
  });
  t.notMatch(reply.body, /LEAKED/);
  t.match(reply.headers['content-type'], /^application\/json/);

  state.creds = { ...state.creds, accountId: '123456789012' };
  t.equal((await get('/v1/workspaces/alpha/credentials')).json().AccountId, '123456789012', 'AccountId when known');
});

t.test('no credential obtainable: 503 with both error spellings', async (t) => {
  const { get } = await build(t, { creds: null, apiKey: null });
  for (const url of ['/v1/workspaces/alpha/credentials', '/v1/workspaces/alpha/token']) {
    const reply = await get(url);
    t.equal(reply.statusCode, 503, url);
    t.match(reply.json(), { code: 'no_credentials', Code: 'no_credentials', message: String, Message: String });
  }
});

t.test('a failure inside: 500 that tells the client nothing, the log keeps it (without secrets)', async (t) => {
  const { get, state, logs } = await build(t);
  state.throws = Object.assign(new Error(`database said ${SECRET} at /work/x.ts:12`), { detail: 'internal detail' });
  const reply = await get('/v1/workspaces/alpha/credentials');
  t.equal(reply.statusCode, 500);
  t.same(reply.json(), { code: 'internal', message: 'Internal error.', Code: 'internal', Message: 'Internal error.' });
  t.notMatch(reply.body, /database|work|detail|stack/);
  t.match(logs(), 'request failed');
  t.notMatch(logs(), TOKEN, 'the request headers are not logged');
});

t.test('token route', async (t) => {
  const { get, state } = await build(t);
  const reply = await get('/v1/workspaces/alpha/token');
  t.same(reply.json(), { workspace: 'alpha', tokenId: 'tok-1', token: 'the-api-key', expiry: '2026-06-01T00:00:00Z' });
  state.apiKey = { tokenId: null, key: 'k', expiresAt: null };
  t.same((await get('/v1/workspaces/alpha/token')).json(), {
    workspace: 'alpha',
    tokenId: null,
    token: 'k',
    expiry: null,
  });
});

t.test('healthz and unknown routes', async (t) => {
  const { get } = await build(t);
  const health = await get('/healthz', {});
  t.same(health.json(), { status: 'ok' });
  const missing = await get('/v1/nothing', {});
  t.equal(missing.statusCode, 404);
  t.same(Object.keys(missing.json()).sort(), ['Code', 'Message', 'code', 'message']);
});

t.test('admin routes: closed without an admin token configured, schema-bound with one', async (t) => {
  const closed = await build(t, {}, false);
  t.equal((await closed.get('/v1/admin/status', { authorization: ADMIN })).statusCode, 404, 'not even routed');
  const tcp = await build(t, {}, true, false);
  for (const [url, method] of [
    ['/v1/admin/status', 'GET'],
    ['/v1/admin/workspaces/alpha/refresh', 'POST'],
  ] as const) {
    const reply = await tcp.get(url, { authorization: ADMIN }, method);
    t.equal(reply.statusCode, 404, `${url} over TCP: not found, whatever the token`);
    t.equal(reply.json().code, 'not_found');
  }
  const { get } = await build(t);
  t.same((await get('/v1/admin/status', { authorization: ADMIN })).json(), [{ workspace: 'alpha' }]);
  const refresh = await get('/v1/admin/workspaces/alpha/refresh', { authorization: ADMIN }, 'POST');
  t.equal(refresh.statusCode, 502);
  t.same(Object.keys(refresh.json()).sort(), ['Code', 'Message', 'code', 'message']);
  t.same((await get('/v1/admin/workspaces/alpha/rotate', { authorization: ADMIN }, 'POST')).json(), { ok: true });
});

t.test('audit: one line per credential and client, none for HEAD, never a secret', async (t) => {
  const { get, state, logs } = await build(t);
  const auditLines = () =>
    logs()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.audit === true);
  await get('/v1/workspaces/alpha/credentials', { authorization: TOKEN }, 'HEAD');
  t.equal(auditLines().length, 0, 'HEAD hands nothing out');
  for (let i = 0; i < 5; i++) await get('/v1/workspaces/alpha/credentials');
  t.equal(auditLines().length, 1, 'a polling client: one line');
  t.match(auditLines()[0], {
    workspace: 'alpha',
    clientTokenId: 'ct-alpha',
    accessKeyIdEnd: '1234',
    expiresAt: '2026-05-01T12:34:56Z',
    remote: String,
  });
  state.creds = { ...state.creds!, accessKeyId: 'ASIAEXAMPLEKEYID5678' };
  await get('/v1/workspaces/alpha/credentials');
  t.equal(auditLines().length, 2, 'a renewed credential: one more');
  await get('/v1/workspaces/alpha/token');
  await get('/v1/workspaces/alpha/token');
  t.equal(auditLines().length, 3, 'the API key: one line');
  await get('/v1/workspaces/alpha/credentials', { authorization: 'wrong' });
  t.equal(auditLines().length, 3, 'a refused request hands nothing out');
  for (const secret of [SECRET, SESSION, TOKEN, 'the-api-key', 'ASIAEXAMPLEKEYID5678'])
    t.notMatch(logs(), secret, `no ${secret.slice(0, 8)}… in the log`);
});

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { UserError } from '../../src/core/errors.js';
import { HubSimulatorClient, type HubSimulatorOptions, startHubSimulator } from '../../src/hub-sim/index.js';
import {
  HubClient,
  type HubClientOptions,
  HubError,
  isKeyRejected,
  parseRetryAfter,
} from '../../src/upstream/index.js';

const BACKOFF = { initialMs: 100, maxMs: 5_000 };

/** A simulator, a key for workspace "alpha", and a client whose sleeps are recorded, not waited. */
async function setup(t: Test, options: { sim?: HubSimulatorOptions; client?: Partial<HubClientOptions> } = {}) {
  const sim = await startHubSimulator(options.sim ?? {});
  t.teardown(() => sim.close());
  const control = new HubSimulatorClient(sim.url);
  const key = await control.createKey('alpha');
  const sleeps: number[] = [];
  const hub = new HubClient(sim.url, {
    timeoutMs: 2_000,
    retries: 2,
    backoff: BACKOFF,
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...options.client,
  });
  return { sim, control, key: key.token, keyId: key.id, hub, sleeps };
}

async function hubError(t: Test, promise: Promise<unknown>): Promise<HubError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof HubError) return err;
    throw err;
  }
  t.fail('expected a HubError');
  throw new Error('unreachable');
}

t.test('s3Credentials: happy path', async (t) => {
  // The simulator's clock is fixed, and just before a second boundary: with a wall clock, a
  // boundary falling between the client's `now` and the hub's answer moved the expiry a second.
  const now = Date.parse('2026-03-01T12:00:00.999Z');
  const { hub, key, control } = await setup(t, { sim: { clock: { now: () => now } } });
  const c = await hub.s3Credentials('alpha', key, now);
  t.match(c.accessKeyId, /^ASIA[A-Z0-9]{16}$/);
  t.equal(c.secretAccessKey.length, 40);
  t.ok(c.sessionToken.length > 100);
  t.equal(c.issuedAt, now);
  t.equal(c.expiresAt, Date.parse('2026-03-01T13:00:00Z'), "one hour from the hub's clock, second precision");
  t.equal((await control.stats()).total.s3Tokens, 1);
});

t.test('tokens: list, create, delete (404 = already gone)', async (t) => {
  const { hub, key, keyId, control } = await setup(t);
  const { tokens: list, unreadable } = await hub.listTokens('alpha', key);
  t.equal(unreadable, 0);
  t.equal(list.length, 1);
  t.match(list[0], { id: keyId, workspace: 'alpha', userId: 'sim-user', name: 'sim-key-1' });
  t.type(list[0]?.expiresAt, 'number');
  t.notOk(list[0] && 'token' in list[0]);

  const created = await hub.createToken('alpha', key, {
    name: 'eodh-credd-1',
    expiresDays: 30,
    scope: 'offline_access',
  });
  t.match(created, { name: 'eodh-credd-1', scope: 'offline_access', workspace: 'alpha' });
  t.type(created.token, 'string');
  t.ok(
    created.expiresAt !== null &&
      created.createdAt !== null &&
      created.expiresAt - created.createdAt === 30 * 86_400_000,
  );
  const noScope = await hub.createToken('alpha', created.token, { name: 'n', expiresDays: 1 });
  t.equal(noScope.scope, 'offline_access workspace:alpha', 'scope omitted from the request when not given');

  await hub.deleteToken('alpha', created.token, keyId);
  await hub.deleteToken('alpha', created.token, keyId);
  t.pass('second delete resolves');
  const state = await control.tokens();
  t.same(
    state.filter((r) => r.revoked).map((r) => r.id),
    [keyId],
  );
  t.match(
    await hubError(t, hub.listTokens('alpha', key)),
    { kind: 'unauthorized', status: 401 },
    'revoked key refused',
  );
  t.equal((await control.stats()).total.deleteTokens, 2);
});

t.test('401 → unauthorized, not retried', async (t) => {
  const { hub, control, sleeps } = await setup(t);
  const err = await hubError(t, hub.s3Credentials('alpha', 'not-a-key', Date.now()));
  t.match(err, {
    kind: 'unauthorized',
    status: 401,
    attempts: 1,
    method: 'POST',
    path: '/api/workspaces/alpha/me/s3-tokens',
  });
  t.equal(err.message, 'POST /api/workspaces/alpha/me/s3-tokens 401: the hub did not accept the API key');
  t.ok(isKeyRejected(err));
  t.same(sleeps, []);
  t.match((await control.stats()).total, { s3Tokens: 1, unauthorized: 1 });
});

t.test('403 → forbidden (key of another workspace, s3_forbidden), not retried', async (t) => {
  const { hub, key, control } = await setup(t);
  t.match(await hubError(t, hub.s3Credentials('beta', key, Date.now())), { kind: 'forbidden', status: 403 });
  await control.setFault('s3_forbidden');
  const err = await hubError(t, hub.s3Credentials('alpha', key, Date.now()));
  t.match(err, { kind: 'forbidden', status: 403, attempts: 1 });
  t.ok(isKeyRejected(err));
  t.notOk(isKeyRejected(new HubError('hub_down', 'x', { method: 'GET', path: '/' })));
  t.notOk(isKeyRejected(new Error('x')));
  t.equal((await control.stats()).total.s3Tokens, 2);
});

t.test('500 then 200 succeeds after one backoff', async (t) => {
  const { hub, key, control, sleeps } = await setup(t);
  await control.setFault('error500', { count: 1 });
  const c = await hub.s3Credentials('alpha', key, Date.now());
  t.match(c.accessKeyId, /^ASIA/);
  t.same(sleeps, [75], 'backoffDelay(1) with random 0.5: 50 + 25');
  t.equal((await control.stats()).total.s3Tokens, 2);
});

t.test('500 every time → hub_down after all retries, with growing backoff', async (t) => {
  const { hub, key, control, sleeps } = await setup(t, { client: { retries: 3 } });
  await control.setFault('error500');
  const err = await hubError(t, hub.listTokens('alpha', key));
  t.match(err, { kind: 'hub_down', status: 500, attempts: 4 });
  t.match(err.message, /after 4 attempts/);
  t.same(sleeps, [75, 150, 300]);
  t.equal((await control.stats()).total.listTokens, 4);
});

t.test('429: a short Retry-After is waited inside the call', async (t) => {
  const { hub, key, control, sleeps } = await setup(t);
  await control.setFault('rate_limited', { count: 1 });
  await hub.s3Credentials('alpha', key, Date.now());
  t.same(sleeps, [1000], 'Retry-After: 1');
});

t.test(
  '429/503: a Retry-After longer than the call backoff goes to the caller at once, capped at 10 min',
  async (t) => {
    const { hub, key, control, sleeps } = await setup(t);
    await control.setFault('rate_limited', { retryAfter: '120' });
    const err = await hubError(t, hub.s3Credentials('alpha', key, Date.now()));
    t.match(err, { kind: 'rate_limited', status: 429, retryAfterMs: 120_000, attempts: 1 });
    t.same(sleeps, [], 'the call did not sleep for two minutes');
    t.equal((await control.stats()).total.s3Tokens, 1, 'nor asked again');

    await control.setFault('unavailable', { retryAfter: '86400' });
    const capped = await hubError(t, hub.s3Credentials('alpha', key, Date.now()));
    t.match(capped, { kind: 'hub_down', status: 503, retryAfterMs: 600_000, attempts: 1 });

    await control.setFault('unavailable', { retryAfter: '' });
    const plain = await hubError(t, hub.s3Credentials('alpha', key, Date.now()));
    t.match(plain, { kind: 'hub_down', status: 503, retryAfterMs: undefined, attempts: 3 }, 'no header: usual retries');
  },
);

t.test("Retry-After as an HTTP-date is read against the hub's Date, whatever our clock says", async (t) => {
  const skew = 4 * 60_000;
  const { hub, key, control } = await setup(t, { sim: { clockSkewMs: skew } });
  const hubSoon = new Date(Date.now() + skew + 90_000).toUTCString();
  await control.setFault('rate_limited', { retryAfter: hubSoon });
  const err = await hubError(t, hub.s3Credentials('alpha', key, Date.now()));
  t.ok(
    err.retryAfterMs! > 85_000 && err.retryAfterMs! <= 91_000,
    `90 s by the hub's clock, not 5.5 min by ours (${err.retryAfterMs})`,
  );
});

t.test("every answer reports the hub's Date with our send and receive times", async (t) => {
  const samples: Array<{ hubDate: number; sentAt: number; receivedAt: number }> = [];
  let now = Date.parse('2026-11-01T12:00:00Z');
  const clock = { now: () => (now += 10) };
  const { hub, key, control } = await setup(t, {
    sim: { clockSkewMs: -4 * 60_000, clock: { now: () => Date.parse('2026-11-01T12:00:00Z') } },
    client: { clock, onDate: (s) => samples.push(s) },
  });
  await hub.s3Credentials('alpha', key, now);
  await control.setFault('error500', { count: 1 });
  await hub.listTokens('alpha', key);
  t.equal(samples.length, 3, 'the 500 as well as the 200s');
  const first = samples[0]!;
  t.equal(first.hubDate, Date.parse('2026-11-01T11:56:00Z'), 'the hub four minutes behind');
  t.ok(first.receivedAt > first.sentAt, 'times from the injected clock');
  await control.setFault('down', { count: 3 });
  const before = samples.length;
  await hubError(t, hub.s3Credentials('alpha', key, now));
  t.equal(samples.length, before, 'no answer, no sample');
});

t.test('Retry-After parsing', async (t) => {
  const now = Date.parse('2025-02-18T16:00:00Z');
  t.equal(parseRetryAfter('2', 10_000, now), 2000);
  t.equal(parseRetryAfter(' 0 ', 10_000, now), 0);
  t.equal(parseRetryAfter('120', 10_000, now), 10_000, 'capped');
  t.equal(parseRetryAfter('Tue, 18 Feb 2025 16:00:05 GMT', 10_000, now), 5000, 'HTTP-date');
  t.equal(parseRetryAfter('Tue, 18 Feb 2025 15:00:00 GMT', 10_000, now), 0, 'date in the past');
  t.equal(parseRetryAfter('-1', 10_000, now), undefined);
  t.equal(parseRetryAfter('soon', 10_000, now), undefined);
  t.equal(parseRetryAfter(null, 10_000, now), undefined);
});

t.test('timeout (slow beyond a 200 ms timeout) → hub_down after retries', async (t) => {
  const { hub, key, control, sleeps } = await setup(t, { client: { timeoutMs: 200 } });
  await control.setFault('slow', { delayMs: 5_000 });
  const err = await hubError(t, hub.s3Credentials('alpha', key, Date.now()));
  t.match(err, { kind: 'hub_down', attempts: 3, status: undefined });
  t.match(err.message, /no answer from the hub within 200 ms \(after 3 attempts\)$/, 'each attempt timed out');
  t.equal(sleeps.length, 2);
  // Not "3": on a loaded machine an attempt can time out before the hub has even parsed it.
  t.ok((await control.stats()).total.s3Tokens <= 3, 'no more than three calls reached the hub');
});

t.test('slow but within the timeout succeeds', async (t) => {
  const { hub, key, control, sleeps } = await setup(t, { client: { timeoutMs: 30_000 } });
  await control.setFault('slow', { delayMs: 100 });
  await hub.s3Credentials('alpha', key, Date.now());
  t.same(sleeps, []);
});

t.test('garbage → bad_response, not retried, both variants', async (t) => {
  const { hub, key, control, sleeps } = await setup(t);
  await control.setFault('garbage');
  const notJson = await hubError(t, hub.s3Credentials('alpha', key, Date.now()));
  t.match(notJson, { kind: 'bad_response', status: 200, attempts: 1 });
  t.match(notJson.message, /not JSON/);
  const missing = await hubError(t, hub.s3Credentials('alpha', key, Date.now()));
  t.match(missing, { kind: 'bad_response', status: 200 });
  t.match(missing.message, /not as documented/);
  t.match(await hubError(t, hub.listTokens('alpha', key)), { kind: 'bad_response' });
  t.match(await hubError(t, hub.listTokens('alpha', key)), { kind: 'bad_response' }, 'an object is not a token list');
  t.match(await hubError(t, hub.createToken('alpha', key, { name: 'x', expiresDays: 1 })), { kind: 'bad_response' });
  t.same(sleeps, []);
  t.equal((await control.stats()).total.s3Tokens, 2);
});

t.test('down → hub_down after retries', async (t) => {
  const { hub, key, control, sleeps } = await setup(t);
  await control.setFault('down');
  const err = await hubError(t, hub.s3Credentials('alpha', key, Date.now()));
  t.match(err, { kind: 'hub_down', attempts: 3 });
  t.match(err.message, /could not reach the hub/);
  t.equal(sleeps.length, 2);
  t.equal((await control.stats()).total.s3Tokens, 3);
});

t.test('nothing listening → hub_down', async (t) => {
  const sim = await startHubSimulator();
  const url = sim.url;
  await sim.close();
  const hub = new HubClient(url, { timeoutMs: 500, retries: 1, backoff: BACKOFF, sleep: async () => {} });
  const err = await hubError(t, hub.listTokens('alpha', 'k'));
  t.match(err, { kind: 'hub_down', attempts: 2 });
  t.match(err.message, /ECONNREFUSED/);
});

t.test('minting refusals and bad requests map to their kinds', async (t) => {
  const { hub, key, control, sleeps } = await setup(t, { sim: { dayMs: 1000 } });
  await control.setFault('mint_unauthorized', { count: 1 });
  t.match(await hubError(t, hub.createToken('alpha', key, { name: 'x', expiresDays: 1 })), { kind: 'unauthorized' });
  await control.setFault('mint_forbidden', { count: 1 });
  t.match(await hubError(t, hub.createToken('alpha', key, { name: 'x', expiresDays: 1 })), { kind: 'forbidden' });
  t.match(await hubError(t, hub.createToken('alpha', key, { name: 'x', expiresDays: 31 })), {
    kind: 'bad_request',
    status: 400,
  });
  await control.settings({ allowMintWithApiKey: false });
  t.match(await hubError(t, hub.createToken('alpha', key, { name: 'x', expiresDays: 1 })), { kind: 'forbidden' });
  t.same(sleeps, []);
  t.equal((await control.tokens()).length, 1, 'no key was minted');
});

t.test('error messages never carry the key or the response body', async (t) => {
  const { hub, key, control } = await setup(t, { client: { timeoutMs: 150, retries: 0 } });
  const errors: HubError[] = [];
  const collect = async (p: Promise<unknown>) => errors.push(await hubError(t, p));
  await collect(hub.s3Credentials('beta', key, Date.now()));
  await collect(hub.s3Credentials('alpha', `${key}x`, Date.now()));
  for (const mode of ['error500', 'rate_limited', 's3_forbidden', 'garbage', 'garbage', 'down'] as const) {
    await control.setFault(mode);
    await collect(hub.s3Credentials('alpha', key, Date.now()));
  }
  await control.setFault('slow', { delayMs: 1_000 });
  await collect(hub.listTokens('alpha', key));
  await control.setFault('none');
  await collect(hub.createToken('alpha', key, { name: 'x', expiresDays: 99 }));
  t.equal(errors.length, 10);
  for (const err of errors) {
    t.notOk(err.message.includes(key), `no key: ${err.message}`);
    t.notMatch(
      err.message,
      /html|unexpected|Simulated|Invalid or expired|not valid for this workspace|Expected \{name/i,
      'no body text',
    );
    t.notMatch(JSON.stringify(err), new RegExp(key.replace(/[-_]/g, '.')), 'nor in any enumerable field');
  }
});

t.test('workspace names and token ids are encoded path segments', async (t) => {
  const { hub, control } = await setup(t);
  const key = await control.createKey('odd ws/../x?');
  const { tokens: list } = await hub.listTokens('odd ws/../x?', key.token);
  t.equal(list[0]?.workspace, 'odd ws/../x?');
  const err = await hubError(t, hub.listTokens('alpha', key.token));
  t.equal(err.kind, 'forbidden');
  await t.rejects(hub.listTokens('..', key.token), RangeError);
  await t.rejects(hub.deleteToken('alpha', key.token, '.'), RangeError);
  await t.rejects(hub.s3Credentials('', key.token, Date.now()), RangeError);
});

t.test('http to a non-loopback host is refused before any request', async (t) => {
  t.throws(() => new HubClient('http://eodatahub.org.uk', { timeoutMs: 100, retries: 0, backoff: BACKOFF }), UserError);
  t.throws(() => new HubClient('http://example.com:8080', { timeoutMs: 100, retries: 0, backoff: BACKOFF }), {
    name: 'UserError',
    exitCode: 78,
  });
  t.equal(
    new HubClient('https://eodatahub.org.uk/', { timeoutMs: 100, retries: 0, backoff: BACKOFF }).baseUrl.href,
    'https://eodatahub.org.uk/',
  );
});

/** A hand-written hub for answers the simulator does not give. */
async function fakeHub(t: Test, handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('request shape: headers, JSON body, base path', async (t) => {
  const seen: Array<{ method?: string; url?: string; headers: IncomingMessage['headers']; body: string }> = [];
  const url = await fakeHub(t, (req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 5, token: 'new-key', expiry: '2025-03-20T10:00:00Z', surprise: [1] }));
    });
  });
  const hub = new HubClient(`${url}/hub/`, { timeoutMs: 1000, retries: 0, backoff: BACKOFF, userAgent: 'test-agent' });
  const created = await hub.createToken('alpha', 'the-key', { name: 'n', expiresDays: 3 });
  t.same(created, {
    id: '5',
    token: 'new-key',
    name: null,
    scope: null,
    workspace: null,
    userId: null,
    createdAt: null,
    expiresAt: Date.parse('2025-03-20T10:00:00Z'),
  });
  t.equal(seen[0]?.method, 'POST');
  t.equal(seen[0]?.url, '/hub/api/workspaces/alpha/me/tokens');
  t.equal(seen[0]?.headers.authorization, 'Bearer the-key');
  t.equal(seen[0]?.headers['content-type'], 'application/json');
  t.equal(seen[0]?.headers['user-agent'], 'test-agent');
  t.same(JSON.parse(seen[0]?.body ?? ''), { name: 'n', expires: 3 });
});

t.test('redirects are not followed; expired or oversized answers are bad_response', async (t) => {
  let mode = 'redirect';
  let hits = 0;
  const url = await fakeHub(t, (_req, res) => {
    hits += 1;
    if (mode === 'redirect') {
      res.writeHead(302, { location: 'http://127.0.0.1:1/steal' });
      res.end();
    } else if (mode === 'expired') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          accessKeyId: 'ASIA1',
          secretAccessKey: 's',
          sessionToken: 't',
          expiration: '2000-01-01T00:00:00Z',
        }),
      );
    } else if (mode === 'huge') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`"${'x'.repeat(2 * 1024 * 1024)}"`);
    } else {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('secret-echo Bearer the-key');
    }
  });
  const hub = new HubClient(url, { timeoutMs: 2000, retries: 1, backoff: BACKOFF, sleep: async () => {} });
  const redirect = await hubError(t, hub.s3Credentials('alpha', 'the-key', Date.now()));
  t.match(redirect, { kind: 'bad_response', status: 302, attempts: 1 });
  t.match(redirect.message, /redirect/);
  mode = 'expired';
  t.match(await hubError(t, hub.s3Credentials('alpha', 'the-key', Date.now())), {
    kind: 'bad_response',
    message: /already expired/,
  });
  mode = 'huge';
  t.match(await hubError(t, hub.s3Credentials('alpha', 'the-key', Date.now())), {
    kind: 'bad_response',
    message: /too large/,
  });
  mode = '503';
  const down = await hubError(t, hub.s3Credentials('alpha', 'the-key', Date.now()));
  t.match(down, { kind: 'hub_down', status: 503, attempts: 2 });
  t.notMatch(down.message, /secret-echo|the-key/);
  t.equal(hits, 5);
});

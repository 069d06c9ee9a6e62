import t, { type Test } from 'tap';
import {
  createHubSimulator,
  HubSimulatorClient,
  type HubSimulatorOptions,
  startHubSimulator,
} from '../../src/hub-sim/index.js';

const T0 = Date.parse('2025-02-18T12:00:00Z');

async function start(t: Test, options: HubSimulatorOptions = {}) {
  const sim = await startHubSimulator(options);
  t.teardown(() => sim.close());
  const control = new HubSimulatorClient(sim.url);
  async function api(method: string, path: string, key?: string, body?: unknown, timeoutMs = 5_000) {
    const headers: Record<string, string> = {};
    if (key !== undefined) headers.authorization = `Bearer ${key}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${sim.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json: json as any };
  }
  return { sim, control, api };
}

function fakeClock(start = T0) {
  const clock = { ms: start, now: () => clock.ms };
  return clock;
}

t.test('bearer check: missing, unknown, wrong scheme → 401; another workspace → 403', async (t) => {
  const { control, api } = await start(t);
  const key = await control.createKey('alpha');
  const none = await api('GET', '/api/workspaces/alpha/me/tokens');
  t.equal(none.status, 401);
  t.equal(none.json.error, 'unauthorized', 'JSON body');
  t.equal((await api('GET', '/api/workspaces/alpha/me/tokens', 'nope')).status, 401);
  t.equal((await api('POST', '/api/workspaces/alpha/me/s3-tokens', key.token)).status, 200);
  t.equal((await api('POST', '/api/workspaces/beta/me/s3-tokens', key.token)).status, 403, 'key of another workspace');
  t.equal((await api('GET', '/api/workspaces/beta/me/tokens', key.token)).status, 403);
  const stats = await control.stats();
  t.equal(stats.total.unauthorized, 2);
  t.equal(stats.workspaces.alpha?.unauthorized, 2);
  t.equal(stats.workspaces.alpha?.s3Tokens, 1);
  t.equal(stats.workspaces.beta?.s3Tokens, 1, 'calls are counted under the workspace in the path');
});

t.test('Authorization must be a Bearer key', async (t) => {
  const { sim, control } = await start(t);
  const key = await control.createKey('alpha');
  const res = await fetch(`${sim.url}/api/workspaces/alpha/me/tokens`, { headers: { authorization: key.token } });
  t.equal(res.status, 401, 'raw key without "Bearer"');
});

t.test('tokens: web-UI key, list without key values, mint with an API key, delete', async (t) => {
  const clock = fakeClock();
  const { control, api } = await start(t, { clock, dayMs: 1000 });
  const first = await control.createKey('alpha', { name: 'laptop', expiresDays: 30 });
  t.match(first, { name: 'laptop', workspace: 'alpha', user_id: 'sim-user', scope: 'offline_access workspace:alpha' });
  t.equal(first.created, '2025-02-18T12:00:00.000Z');
  t.equal(first.expiry, '2025-02-18T12:00:30.000Z', '30 scaled days of 1000 ms');
  t.match(first.token, /^[A-Za-z0-9_-]{20,}$/);

  clock.ms += 5;
  const minted = await api('POST', '/api/workspaces/alpha/me/tokens', first.token, {
    name: 'credd-1',
    expires: 7,
    scope: 'offline_access',
  });
  t.equal(minted.status, 201);
  t.match(minted.json, {
    name: 'credd-1',
    scope: 'offline_access',
    workspace: 'alpha',
    user_id: 'sim-user',
    created: '2025-02-18T12:00:00.005Z',
    expiry: '2025-02-18T12:00:07.005Z',
  });
  t.type(minted.json.token, 'string');
  t.not(minted.json.token, first.token);

  const list = await api('GET', '/api/workspaces/alpha/me/tokens', minted.json.token);
  t.equal(list.status, 200);
  t.same(
    list.json.map((r: any) => r.id),
    [first.id, minted.json.id],
  );
  for (const r of list.json) {
    t.notOk('token' in r, 'no key values in the list');
    t.same(Object.keys(r).sort(), ['created', 'expiry', 'id', 'name', 'scope', 'user_id', 'workspace']);
  }

  const del = await api('DELETE', `/api/workspaces/alpha/me/tokens/${first.id}`, minted.json.token);
  t.equal(del.status, 204);
  t.equal(del.text, '');
  t.equal(
    (await api('GET', '/api/workspaces/alpha/me/tokens', first.token)).status,
    401,
    'a revoked key stops working at once',
  );
  t.equal(
    (await api('DELETE', `/api/workspaces/alpha/me/tokens/${first.id}`, minted.json.token)).status,
    404,
    'already revoked',
  );
  t.equal((await api('DELETE', '/api/workspaces/alpha/me/tokens/no-such-id', minted.json.token)).status, 404);
  const after = await api('GET', '/api/workspaces/alpha/me/tokens', minted.json.token);
  t.same(
    after.json.map((r: any) => r.id),
    [minted.json.id],
  );

  const all = await control.tokens();
  t.same(
    all.map((r) => [r.id, r.revoked, r.expired]),
    [
      [first.id, true, false],
      [minted.json.id, false, false],
    ],
  );
  t.notOk(
    all.some((r) => 'token' in r),
    '/_sim/tokens shows no key values',
  );
  const stats = await control.stats();
  t.match(stats.total, { mintTokens: 1, listTokens: 3, deleteTokens: 3, unauthorized: 1 });
});

t.test('scope defaults to the workspace scope; other users see only their own tokens', async (t) => {
  const { control, api } = await start(t);
  const a = await control.createKey('alpha', { user: 'ann' });
  const b = await control.createKey('alpha', { user: 'bob' });
  const minted = await api('POST', '/api/workspaces/alpha/me/tokens', a.token, { name: 'x', expires: 1 });
  t.equal(minted.json.scope, 'offline_access workspace:alpha');
  t.equal(minted.json.user_id, 'ann', 'a minted key belongs to the caller');
  const bobs = await api('GET', '/api/workspaces/alpha/me/tokens', b.token);
  t.same(
    bobs.json.map((r: any) => r.id),
    [b.id],
  );
  t.equal(
    (await api('DELETE', `/api/workspaces/alpha/me/tokens/${a.id}`, b.token)).status,
    404,
    "cannot revoke another user's key",
  );
});

t.test('keys expire by the injected clock', async (t) => {
  const clock = fakeClock();
  const { control, api } = await start(t, { clock, dayMs: 60_000 });
  const key = await control.createKey('alpha', { expiresDays: 2 });
  const short = await control.createKey('alpha', { expiresInMs: 500 });
  t.equal(short.expiry, '2025-02-18T12:00:00.500Z');
  t.equal((await api('GET', '/api/workspaces/alpha/me/tokens', short.token)).status, 200);
  clock.ms += 500;
  t.equal(
    (await api('GET', '/api/workspaces/alpha/me/tokens', short.token)).status,
    401,
    'expired at its expiry instant',
  );
  const list = await api('GET', '/api/workspaces/alpha/me/tokens', key.token);
  t.equal(list.json.length, 2, 'expired keys are still listed');
  clock.ms = T0 + 2 * 60_000 - 1;
  t.equal((await api('POST', '/api/workspaces/alpha/me/s3-tokens', key.token)).status, 200);
  clock.ms += 1;
  t.equal((await api('POST', '/api/workspaces/alpha/me/s3-tokens', key.token)).status, 401);
  const all = await control.tokens();
  t.same(
    all.map((r) => r.expired),
    [true, true],
  );
  const stale = await control.createKey('alpha', { expiresInMs: -1 });
  t.equal(
    (await api('GET', '/api/workspaces/alpha/me/tokens', stale.token)).status,
    401,
    'a key can be made already expired',
  );
});

t.test('mint body is validated: 30-day cap and types', async (t) => {
  const { control, api } = await start(t);
  const key = await control.createKey('alpha');
  const path = '/api/workspaces/alpha/me/tokens';
  t.equal((await api('POST', path, key.token, { name: 'ok', expires: 30 })).status, 201);
  for (const body of [
    { name: 'x', expires: 31 },
    { name: 'x', expires: -1 },
    { name: 'x', expires: '7' },
    { expires: 7 },
    { name: '', expires: 7 },
    { name: 'x', expires: 7, scope: 3 },
    [],
    '{"name":',
  ]) {
    const res = await api('POST', path, key.token, body);
    t.equal(res.status, 400, JSON.stringify(body));
    t.equal(res.json?.error, 'bad_request');
  }
  t.equal(
    (await api('POST', path, 'bad-key', { name: 'x', expires: 99 })).status,
    401,
    'auth is checked before the body',
  );
  t.equal((await control.tokens()).length, 2, 'nothing created by bad requests');
  // As the web UI (0–30 days, fractions) and pyeodh (name only) send them.
  for (const body of [{ name: 'x', expires: 1.5 }, { name: 'x', expires: 0 }, { name: 'pyeodh' }]) {
    t.equal((await api('POST', path, key.token, body)).status, 201, JSON.stringify(body));
  }
});

t.test('maxTokenDays option and allowMintWithApiKey setting', async (t) => {
  const { control, api } = await start(t, { maxTokenDays: 5, allowMintWithApiKey: false });
  const key = await control.createKey('alpha', { expiresDays: 5 });
  const path = '/api/workspaces/alpha/me/tokens';
  t.equal(
    (await api('POST', path, key.token, { name: 'x', expires: 1 })).status,
    403,
    'minting with an API key refused',
  );
  t.match(await control.settings({ allowMintWithApiKey: true }), {
    s3LifetimeSeconds: 3600,
    allowMintWithApiKey: true,
  });
  t.equal((await api('POST', path, key.token, { name: 'x', expires: 6 })).status, 400);
  t.equal((await api('POST', path, key.token, { name: 'x', expires: 5 })).status, 201);
  await t.rejects(control.createKey('alpha', { expiresDays: 6 }), /answered 400/);
  await t.rejects(control.settings({ s3LifetimeSeconds: 0 }), /answered 400/);
});

t.test('s3-tokens: shape, RFC 3339 second precision, lifetime setting', async (t) => {
  const clock = fakeClock(T0 + 123);
  const { control, api } = await start(t, { clock });
  const key = await control.createKey('alpha');
  const res = await api('POST', '/api/workspaces/alpha/me/s3-tokens', key.token);
  t.equal(res.status, 200);
  t.same(Object.keys(res.json).sort(), ['accessKeyId', 'expiration', 'secretAccessKey', 'sessionToken']);
  t.match(res.json.accessKeyId, /^ASIA[A-Z0-9]{16}$/);
  t.equal(res.json.secretAccessKey.length, 40);
  t.ok(res.json.sessionToken.length >= 200, 'long session token');
  t.equal(res.json.expiration, '2025-02-18T13:00:00Z');
  const again = await api('POST', '/api/workspaces/alpha/me/s3-tokens', key.token, '');
  t.equal(again.status, 200, 'an empty JSON body is accepted');
  t.not(again.json.accessKeyId, res.json.accessKeyId, 'fresh credentials each time');
  await control.settings({ s3LifetimeSeconds: 900 });
  const short = await api('POST', '/api/workspaces/alpha/me/s3-tokens', key.token);
  t.equal(short.json.expiration, '2025-02-18T12:15:00Z');
  t.equal((await control.stats()).total.s3Tokens, 3);
});

t.test('s3LifetimeSeconds option', async (t) => {
  const { control, api } = await start(t, { clock: fakeClock(), s3LifetimeSeconds: 60 });
  const key = await control.createKey('alpha');
  t.equal((await api('POST', '/api/workspaces/alpha/me/s3-tokens', key.token)).json.expiration, '2025-02-18T12:01:00Z');
});

t.test('faults', async (t) => {
  const { control, api } = await start(t);
  const key = await control.createKey('alpha');
  const s3 = () => api('POST', '/api/workspaces/alpha/me/s3-tokens', key.token);
  const mint = () => api('POST', '/api/workspaces/alpha/me/tokens', key.token, { name: 'm', expires: 1 });
  const list = () => api('GET', '/api/workspaces/alpha/me/tokens', key.token);

  t.test('down destroys the socket', async (t) => {
    await control.setFault('down');
    await t.rejects(s3(), { name: 'TypeError' }, 'fetch failed');
    t.equal((await control.tokens()).length, 1, '/_sim/ is never faulted');
  });

  t.test('error500', async (t) => {
    await control.setFault('error500');
    t.equal((await s3()).status, 500);
    t.equal((await list()).status, 500);
  });

  t.test('count: 1 → one 500 then back to normal', async (t) => {
    const fault = await control.setFault('error500', { count: 1 });
    t.match(fault, { mode: 'error500', remaining: 1 });
    t.equal((await s3()).status, 500);
    t.equal((await s3()).status, 200);
  });

  t.test('slow delays, then answers normally', async (t) => {
    await control.setFault('slow', { delayMs: 150 });
    const started = Date.now();
    t.equal((await s3()).status, 200);
    t.ok(Date.now() - started >= 140, 'waited');
    await t.rejects(api('POST', '/api/workspaces/alpha/me/s3-tokens', key.token, undefined, 50), {
      name: 'TimeoutError',
    });
  });

  t.test('garbage alternates non-JSON and JSON missing fields', async (t) => {
    await control.setFault('garbage');
    const a = await s3();
    const b = await s3();
    t.equal(a.status, 200);
    t.equal(a.json, undefined, 'not JSON');
    t.equal(b.status, 200);
    t.same(b.json, { unexpected: true });
  });

  t.test('mint_unauthorized / mint_forbidden affect only minting', async (t) => {
    await control.setFault('mint_unauthorized', { count: 1 });
    t.equal((await s3()).status, 200, 'other calls unaffected and do not use up the count');
    t.equal((await mint()).status, 401);
    t.equal((await mint()).status, 201, 'count used up');
    await control.setFault('mint_forbidden');
    t.equal((await mint()).status, 403);
    t.equal((await list()).status, 200);
  });

  t.test('s3_forbidden affects only s3-tokens', async (t) => {
    await control.setFault('s3_forbidden');
    t.equal((await s3()).status, 403);
    t.equal((await list()).status, 200);
  });

  t.test('rate_limited → 429 with Retry-After: 1', async (t) => {
    await control.setFault('rate_limited');
    const res = await list();
    t.equal(res.status, 429);
    t.equal(res.headers.get('retry-after'), '1');
  });

  t.test('rate_limited and unavailable with a chosen Retry-After, or none', async (t) => {
    await control.setFault('rate_limited', { retryAfter: 'Tue, 18 Feb 2025 16:00:05 GMT' });
    t.equal((await s3()).headers.get('retry-after'), 'Tue, 18 Feb 2025 16:00:05 GMT');
    await control.setFault('unavailable', { retryAfter: '120' });
    const res = await s3();
    t.equal(res.status, 503);
    t.equal(res.headers.get('retry-after'), '120');
    await control.setFault('unavailable', { retryAfter: '' });
    t.equal((await s3()).headers.get('retry-after'), null);
  });

  t.test('none, and bad fault bodies', async (t) => {
    await control.setFault('none');
    t.equal((await s3()).status, 200);
    await t.rejects(control.setFault('explode' as never), /answered 400/);
    await t.rejects(control.setFault('slow', { delayMs: -1 }), /answered 400/);
  });

  t.test('faulted calls are counted', async (t) => {
    const stats = await control.stats();
    t.equal(stats.total.s3Tokens, 14, 'every s3-tokens call above, faulted or not');
  });
});

t.test('createHubSimulator builds without listening', async (t) => {
  const { app, state } = createHubSimulator({ clock: fakeClock() });
  t.teardown(() => app.close());
  const key = state.createToken({ workspace: 'alpha', userId: 'u', name: 'n', lifetimeMs: 1000 });
  const res = await app.inject({
    method: 'POST',
    url: '/api/workspaces/alpha/me/s3-tokens',
    headers: { authorization: `Bearer ${key.token}` },
  });
  t.equal(res.statusCode, 200);
  t.equal(res.json().expiration, '2025-02-18T13:00:00Z');
  t.equal((await app.inject({ method: 'GET', url: '/nope' })).statusCode, 404);
  t.equal(app.server.listening, false);
});

t.test('startHubSimulator listens on loopback only', async (t) => {
  await t.rejects(startHubSimulator({ host: '0.0.0.0' }), /loopback only/);
  const sim = await startHubSimulator();
  t.teardown(() => sim.close());
  t.match(sim.url, /^http:\/\/127\.0\.0\.1:\d+$/);
});

t.test('Date comes from the simulator clock, shifted by clockSkewMs along with minted expiry times', async (t) => {
  const clock = fakeClock();
  const { control, api } = await start(t, { clock, s3LifetimeSeconds: 600, clockSkewMs: 240_000 });
  const key = await control.createKey('alpha');
  const ahead = await api('POST', '/api/workspaces/alpha/me/s3-tokens', key.token);
  t.equal(ahead.headers.get('date'), new Date(T0 + 240_000).toUTCString(), 'four minutes ahead');
  t.equal(Date.parse(ahead.json.expiration), T0 + 240_000 + 600_000, 'expiry by the hub clock');
  await control.settings({ clockSkewMs: -240_000 });
  const behind = await api('GET', '/api/workspaces/alpha/me/tokens', key.token);
  t.equal(behind.headers.get('date'), new Date(T0 - 240_000).toUTCString(), 'four minutes behind');
  const unauthorised = await api('GET', '/api/workspaces/alpha/me/tokens', 'nope');
  t.equal(unauthorised.headers.get('date'), new Date(T0 - 240_000).toUTCString(), 'error answers too');
  await t.rejects(control.settings({ clockSkewMs: 86_400_001 }), /answered 400/);
});

t.test('the call log: every API call with the simulator time, faulted or not', async (t) => {
  const clock = fakeClock();
  const { control, api } = await start(t, { clock });
  const key = await control.createKey('alpha');
  await api('POST', '/api/workspaces/alpha/me/s3-tokens', key.token);
  clock.ms += 1_500;
  await control.setFault('error500', { count: 1 });
  await api('GET', '/api/workspaces/alpha/me/tokens', key.token);
  await api('GET', '/_sim/stats');
  t.same(await control.calls(), [
    { at: T0, workspace: 'alpha', route: 's3Tokens' },
    { at: T0 + 1_500, workspace: 'alpha', route: 'listTokens' },
  ]);
});

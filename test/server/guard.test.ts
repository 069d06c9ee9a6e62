/**
 * Every guard, through the real HTTP listener: the app on 127.0.0.1:<ephemeral>, a Broker over a
 * real Store, the hub simulator upstream. Requests are made with node:http (full control of Host)
 * or raw sockets where the HTTP client would not send what we want.
 */
import t, { type Test } from 'tap';
import { type Reply, rawExchange, startLiveApp } from './fixtures/live-app.js';

const ERROR_KEYS = ['Code', 'Message', 'code', 'message'];

function assertErrorReply(t: Test, reply: Reply, status: number, code: string, label = `${status} ${code}`): void {
  t.equal(reply.status, status, `${label}: status`);
  t.equal(reply.headers['cache-control'], 'no-store', `${label}: no-store`);
  t.match(String(reply.headers['content-type']), /^application\/json/, `${label}: JSON`);
  if (reply.body.length > 0) {
    t.same(Object.keys(reply.json as object).sort(), ERROR_KEYS, `${label}: only code and message`);
    t.match(reply.json, { code, Code: code }, `${label}: code`);
    t.notMatch(reply.body, /at .*\.(js|ts):\d+|stack|node_modules|\/work\//, `${label}: no stack or internals`);
  }
}

// Failed authentications are rate limited per source; this app allows plenty so that the guard
// tests below do not trip the limiter. The limiter has its own app further down.
const generous = { max: 10_000, timeWindowMs: 60_000 };

t.test('client token: valid, missing, wrong, other workspace', async (t) => {
  const app = await startLiveApp(t, { failedAuth: generous });
  const ok = await app.credentials('alpha');
  t.equal(ok.status, 200);
  t.same(
    Object.keys(ok.json as object).sort(),
    ['AccessKeyId', 'Expiration', 'SecretAccessKey', 'Token'],
    'exactly the four fields',
  );
  t.match((ok.json as { Expiration: string }).Expiration, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  t.equal(ok.headers['cache-control'], 'no-store');
  t.match(String(ok.headers['content-type']), /^application\/json/);

  t.equal((await app.credentials('alpha', `Bearer ${app.tokens.alpha}`)).status, 200, 'a "Bearer " prefix is accepted');
  assertErrorReply(t, await app.credentials('alpha', null), 401, 'unauthorized', 'no Authorization');
  assertErrorReply(t, await app.credentials('alpha', ''), 401, 'unauthorized', 'empty Authorization');
  assertErrorReply(t, await app.credentials('alpha', 'not-the-token'), 401, 'unauthorized', 'wrong token');
  assertErrorReply(
    t,
    await app.credentials('alpha', `${app.tokens.alpha}x`),
    401,
    'unauthorized',
    'token plus a character',
  );
  assertErrorReply(
    t,
    await app.credentials('alpha', app.tokens.alpha!.slice(0, -1)),
    401,
    'unauthorized',
    'token minus a character',
  );
  assertErrorReply(t, await app.credentials('alpha', 'x'.repeat(4000)), 401, 'unauthorized', 'very long token');
  assertErrorReply(t, await app.credentials('alpha', app.tokens.beta), 403, 'forbidden', "beta's token on alpha");
  assertErrorReply(t, await app.credentials('beta', app.tokens.alpha), 403, 'forbidden', "alpha's token on beta");
  assertErrorReply(
    t,
    await app.credentials('gamma', app.tokens.alpha),
    403,
    'forbidden',
    'a workspace that does not exist',
  );
  assertErrorReply(
    t,
    await app.credentials('gamma', 'nope'),
    401,
    'unauthorized',
    'unknown workspace, wrong token: no hint it is unknown',
  );

  const token = await app.request('/v1/workspaces/alpha/token', { headers: { authorization: app.tokens.alpha! } });
  t.equal(token.status, 200);
  t.same(Object.keys(token.json as object).sort(), ['expiry', 'token', 'tokenId', 'workspace']);
  t.equal((token.json as { token: string }).token, app.apiKeys.alpha);
  assertErrorReply(
    t,
    await app.request('/v1/workspaces/alpha/token', { headers: { authorization: app.tokens.beta! } }),
    403,
    'forbidden',
  );
  assertErrorReply(t, await app.request('/v1/workspaces/alpha/token'), 401, 'unauthorized');
});

t.test('admin routes take the admin token only, and only on the Unix socket', async (t) => {
  const app = await startLiveApp(t, { failedAuth: generous });
  const status = await app.request('/v1/admin/status', { headers: { authorization: app.adminToken }, local: true });
  t.equal(status.status, 200);
  t.notMatch(status.body, app.apiKeys.alpha!, 'status carries no API key');
  assertErrorReply(t, await app.request('/v1/admin/status', { local: true }), 401, 'unauthorized', 'no token');
  assertErrorReply(
    t,
    await app.request('/v1/admin/status', { headers: { authorization: app.tokens.alpha! }, local: true }),
    401,
    'unauthorized',
    'a client token',
  );
  const refresh = await app.request('/v1/admin/workspaces/alpha/refresh', {
    method: 'POST',
    headers: { authorization: app.adminToken },
    local: true,
  });
  t.equal(refresh.status, 200);
  t.same(refresh.json, { ok: true });
  assertErrorReply(
    t,
    await app.request('/v1/admin/workspaces/alpha/refresh', {
      method: 'POST',
      headers: { authorization: app.tokens.alpha! },
      local: true,
    }),
    401,
    'unauthorized',
    'refresh with a client token',
  );
  // On TCP the admin routes do not exist, whatever the token (#12).
  for (const [path, method] of [
    ['/v1/admin/status', 'GET'],
    ['/v1/admin/workspaces/alpha/refresh', 'POST'],
  ] as const) {
    assertErrorReply(
      t,
      await app.request(path, { method, headers: { authorization: app.adminToken } }),
      404,
      'not_found',
      `${path} over TCP`,
    );
  }
  // The socket answers any Host (no browser reaches it); TCP still checks it.
  const anyHost = await app.request('/v1/admin/status', {
    headers: { authorization: app.adminToken, host: 'evil.example' },
    local: true,
  });
  t.equal(anyHost.status, 200);
});

t.test('Host must be the loopback address and port we serve (DNS rebinding)', async (t) => {
  const app = await startLiveApp(t, { failedAuth: generous });
  const auth = { authorization: app.tokens.alpha! };
  for (const host of [`127.0.0.1:${app.port}`, `localhost:${app.port}`, `[::1]:${app.port}`, `LOCALHOST:${app.port}`]) {
    t.equal((await app.request('/v1/workspaces/alpha/credentials', { headers: { ...auth, host } })).status, 200, host);
  }
  const refused = [
    `evil.example:${app.port}`,
    `127.0.0.1.nip.io:${app.port}`,
    `localhost.:${app.port}`,
    `localhost.evil.example:${app.port}`,
    `127.0.0.1:${app.port + 1}`,
    `127.0.0.1:0${app.port}`,
    '127.0.0.1',
    'localhost',
    `127.0.0.2:${app.port}`,
    `0.0.0.0:${app.port}`,
    `[::ffff:127.0.0.1]:${app.port}`,
    `2130706433:${app.port}`,
    `0x7f000001:${app.port}`,
    `127.1:${app.port}`,
    `127.0.0.1:${app.port}@evil.example`,
    '',
  ];
  for (const host of refused) {
    const reply = await app.request('/v1/workspaces/alpha/credentials', { headers: { ...auth, host } });
    t.ok(reply.status === 403 || reply.status === 400, `${JSON.stringify(host)} refused (${reply.status})`);
    t.notMatch(reply.body, /SecretAccessKey/);
  }
  assertErrorReply(
    t,
    await app.request('/v1/workspaces/alpha/credentials', { headers: { ...auth, host: 'evil.example' } }),
    403,
    'forbidden_host',
  );
  t.equal((await app.request('/healthz', { headers: { host: 'evil.example' } })).status, 403, 'healthz too');

  // What node:http will not send: no Host at all (HTTP/1.0), a second Host, an absolute-form target.
  const h = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;
  const noHost = await rawExchange(
    app.port,
    h(['GET /v1/workspaces/alpha/credentials HTTP/1.0', `Authorization: ${app.tokens.alpha}`]),
  );
  t.match(noHost, /^HTTP\/1\.1 403 /, 'HTTP/1.0 without Host');
  const noHost11 = await rawExchange(
    app.port,
    h(['GET /v1/workspaces/alpha/credentials HTTP/1.1', `Authorization: ${app.tokens.alpha}`, 'Connection: close']),
  );
  t.match(noHost11, /^HTTP\/1\.1 400 /, 'HTTP/1.1 without Host');
  for (const order of [
    [`Host: ${app.host}`, 'Host: evil.example'],
    ['Host: evil.example', `Host: ${app.host}`],
  ]) {
    const twice = await rawExchange(
      app.port,
      h([
        'GET /v1/workspaces/alpha/credentials HTTP/1.1',
        ...order,
        `Authorization: ${app.tokens.alpha}`,
        'Connection: close',
      ]),
    );
    t.match(twice, /^HTTP\/1\.1 400 /, `two Host headers (${order.join(', ')})`);
    t.notMatch(twice, /SecretAccessKey/);
  }
  const absolute = await rawExchange(
    app.port,
    h([
      `GET http://evil.example/v1/workspaces/alpha/credentials HTTP/1.1`,
      `Host: ${app.host}`,
      `Authorization: ${app.tokens.alpha}`,
      'Connection: close',
    ]),
  );
  t.match(absolute, /^HTTP\/1\.1 400 /, 'absolute-form request target');
  t.notMatch(absolute, /SecretAccessKey/);
  const twoTokens = await rawExchange(
    app.port,
    h([
      'GET /v1/workspaces/alpha/credentials HTTP/1.1',
      `Host: ${app.host}`,
      'Authorization: nope',
      `Authorization: ${app.tokens.alpha}`,
      'Connection: close',
    ]),
  );
  t.match(twoTokens, /^HTTP\/1\.1 400 /, 'two Authorization headers');
});

t.test('anything a browser sends is refused', async (t) => {
  const app = await startLiveApp(t, { failedAuth: generous });
  const auth = { authorization: app.tokens.alpha! };
  for (const origin of ['http://evil.example', 'null', `http://127.0.0.1:${app.port}`, '']) {
    assertErrorReply(
      t,
      await app.request('/v1/workspaces/alpha/credentials', { headers: { ...auth, origin } }),
      403,
      'forbidden_browser',
      `Origin: ${JSON.stringify(origin)}`,
    );
  }
  for (const site of ['cross-site', 'same-site', 'same-origin', 'bogus']) {
    assertErrorReply(
      t,
      await app.request('/v1/workspaces/alpha/credentials', { headers: { ...auth, 'sec-fetch-site': site } }),
      403,
      'forbidden_browser',
      `Sec-Fetch-Site: ${site}`,
    );
  }
  t.equal(
    (await app.request('/v1/workspaces/alpha/credentials', { headers: { ...auth, 'sec-fetch-site': 'none' } })).status,
    200,
    'Sec-Fetch-Site: none (typed by the user) is not a page',
  );
  assertErrorReply(
    t,
    await app.request('/healthz', { headers: { origin: 'http://evil.example' } }),
    403,
    'forbidden_browser',
    'healthz',
  );
  const preflight = await app.request('/v1/workspaces/alpha/credentials', {
    method: 'OPTIONS',
    headers: { origin: 'http://evil.example', 'access-control-request-method': 'GET' },
  });
  t.equal(preflight.status, 403, 'CORS preflight refused');
  t.notOk(preflight.headers['access-control-allow-origin'], 'no CORS header, ever');
});

t.test('methods, bodies, sizes', async (t) => {
  const app = await startLiveApp(t, { failedAuth: generous });
  const auth = { authorization: app.tokens.alpha! };
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const reply = await app.request('/v1/workspaces/alpha/credentials', { method, headers: auth });
    assertErrorReply(t, reply, 405, 'method_not_allowed', method);
    t.equal(reply.headers.allow, 'GET, HEAD');
  }
  for (const method of ['TRACE', 'PROPFIND']) {
    const reply = await app.request('/v1/workspaces/alpha/credentials', { method, headers: auth });
    t.ok(reply.status >= 400 && reply.status < 500, `${method}: ${reply.status}`);
    t.notMatch(reply.body, app.tokens.alpha!, `${method}: the request is not echoed`);
  }
  const connect = await rawExchange(
    app.port,
    `CONNECT ${app.host} HTTP/1.1\r\nHost: ${app.host}\r\nAuthorization: ${app.tokens.alpha}\r\n\r\n`,
  );
  t.notMatch(connect, /^HTTP\/1\.1 2/, 'CONNECT is not tunnelled');
  t.notMatch(connect, app.tokens.alpha!, 'CONNECT: the request is not echoed');
  const head = await app.request('/v1/workspaces/alpha/credentials', { method: 'HEAD', headers: auth });
  t.equal(head.status, 200, 'HEAD');
  t.equal(head.body, '', 'HEAD has no body');
  t.equal(head.headers['cache-control'], 'no-store');
  t.equal(
    (await app.request('/v1/workspaces/alpha/credentials', { method: 'HEAD' })).status,
    401,
    'HEAD needs the token too',
  );

  assertErrorReply(
    t,
    await app.request('/v1/workspaces/alpha/credentials', {
      headers: { ...auth, 'content-length': '5' },
      body: 'hello',
    }),
    400,
    'bad_request',
    'GET with a body',
  );
  assertErrorReply(
    t,
    await app.request('/v1/workspaces/alpha/credentials', {
      headers: { ...auth, 'transfer-encoding': 'chunked' },
      body: 'hello',
    }),
    400,
    'bad_request',
    'chunked body',
  );
  assertErrorReply(
    t,
    await app.request('/v1/admin/workspaces/alpha/refresh', {
      method: 'POST',
      headers: { authorization: app.adminToken, 'content-type': 'application/json', 'content-length': '2' },
      body: '{}',
    }),
    400,
    'bad_request',
    'admin POST with a body',
  );

  const bigHeader = await app.request('/v1/workspaces/alpha/credentials', {
    headers: { ...auth, 'x-filler': 'a'.repeat(9 * 1024) },
  });
  t.equal(bigHeader.status, 431, 'headers over 8 KiB');
  t.equal(bigHeader.headers['cache-control'], 'no-store');
  t.match(bigHeader.json, { code: 'bad_request' });
  const longUrl = await app.request(`/v1/workspaces/alpha/credentials?${'q'.repeat(9 * 1024)}`, { headers: auth });
  t.equal(longUrl.status, 431, 'a URL over 8 KiB');
  const longParam = await app.request(`/v1/workspaces/${'a'.repeat(200)}/credentials`, { headers: auth });
  t.ok(longParam.status === 404 || longParam.status === 400, `an over-long workspace (${longParam.status})`);
  t.equal((await app.credentials('alpha')).status, 200, 'still serving');
});

t.test('workspace names: strict pattern, no path tricks, no confusables', async (t) => {
  const app = await startLiveApp(t, { failedAuth: generous });
  const auth = { authorization: app.tokens.alpha! };
  const tricks = [
    '..',
    '.',
    'ALPHA',
    'Alpha',
    'alpha.',
    'alpha%2F..',
    '..%2Falpha',
    '%2e%2e',
    'alpha%00',
    'alpha%20',
    '%20alpha',
    '-alpha',
    'alpha-',
    'alpha_',
    'a'.repeat(64),
    'alph%D0%B0', // Cyrillic a
    '%D0%B0lpha',
    '%E2%80%8Balpha', // zero-width space
    'alpha%E2%80%8B',
    '%EF%BD%81lpha', // fullwidth a
    'alpha%0A',
    'alpha%2Fcredentials',
    '%61lpha%2F',
  ];
  for (const name of tricks) {
    const reply = await app.request(`/v1/workspaces/${name}/credentials`, { headers: auth });
    t.ok(reply.status === 404 || reply.status === 400, `${name}: ${reply.status}`);
    t.notMatch(reply.body, /SecretAccessKey/, `${name}: nothing handed out`);
  }
  t.equal(
    (await app.request('/v1/workspaces/%61lpha/credentials', { headers: auth })).status,
    200,
    'percent-encoded ASCII decodes to the same name',
  );
  for (const path of [
    '/v1/workspaces/beta/../alpha/credentials',
    '/v1/workspaces/alpha/credentials/',
    '//v1/workspaces/alpha/credentials',
    '/v1/workspaces//alpha/credentials',
    '/V1/workspaces/alpha/credentials',
  ]) {
    const reply = await app.request(path, { headers: auth });
    t.equal(reply.status, 404, path);
    t.notMatch(reply.body, /SecretAccessKey/);
  }
  const bad = await app.request('/v1/workspaces/%C0%AE/credentials', { headers: auth });
  assertErrorReply(t, bad, 400, 'bad_request', 'percent-encoding that is not UTF-8');
  t.notMatch(bad.body, /%C0/, 'the URL is not echoed');
});

t.test('failed authentications are rate limited per source; valid clients never are', async (t) => {
  const app = await startLiveApp(t); // the defaults: 20 failures a minute
  for (let i = 0; i < 200; i++) {
    const reply = await app.credentials('alpha');
    if (reply.status !== 200) t.fail(`valid request ${i}: ${reply.status}`);
  }
  t.pass('200 valid requests in a row, none throttled');
  const failures: number[] = [];
  for (let i = 0; i < 20; i++) failures.push((await app.credentials('alpha', `wrong-${i}`)).status);
  t.same(new Set(failures), new Set([401]), '20 failures answered 401');
  const limited = await app.credentials('alpha', 'wrong-21');
  assertErrorReply(t, limited, 429, 'too_many_requests', '21st failure');
  const retryAfter = Number(limited.headers['retry-after']);
  t.ok(
    Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
    `Retry-After: ${limited.headers['retry-after']}`,
  );
  t.equal(
    (await app.credentials('beta', app.tokens.alpha)).status,
    429,
    'a token of another workspace is a failure too',
  );
  t.equal(
    (await app.request('/v1/admin/status', { headers: { authorization: 'nope' }, local: true })).status,
    401,
    'a wrong admin token on the socket counts apart (the socket is one source)',
  );
  t.equal((await app.credentials('alpha', app.tokens.alpha)).status, 200, 'the valid client is still served');
  t.equal((await app.credentials('beta')).status, 200, 'every valid client is');
  t.equal((await app.request('/healthz')).status, 200, 'healthz is not limited');
  t.equal((await app.credentials('alpha', app.tokens.alpha)).status, 200);
  const warnings = app
    .logs()
    .split('\n')
    .filter((l) => l.includes('too many failed authentications'));
  t.equal(warnings.length, 1, 'one warning for the throttled source, not one per request');
});

t.test('the limit lifts after its window', async (t) => {
  // @fastify/rate-limit's store reads Date.now(): move that clock instead of waiting, with a
  // window no run of requests outlasts (a 500 ms window used to lapse between requests under load).
  const realNow = Date.now;
  let offsetMs = 0;
  Date.now = () => realNow() + offsetMs;
  t.teardown(() => {
    Date.now = realNow;
  });
  const app = await startLiveApp(t, { failedAuth: { max: 3, timeWindowMs: 3_600_000 } });
  for (let i = 0; i < 3; i++) t.equal((await app.credentials('alpha', 'wrong')).status, 401);
  t.equal((await app.credentials('alpha', 'wrong')).status, 429);
  offsetMs = 1_800_000;
  t.equal((await app.credentials('alpha', 'wrong')).status, 429, 'still limited half a window later');
  offsetMs = 3_600_000 + 1;
  t.equal((await app.credentials('alpha', 'wrong')).status, 401, 'counted afresh after it');
});

t.test('slow clients are cut off; the others are served meanwhile', async (t) => {
  const app = await startLiveApp(t, { failedAuth: generous, limits: { headersTimeoutMs: 400, requestTimeoutMs: 800 } });
  const { connect } = await import('node:net');
  let destroying = false;
  const closedByServer: Array<Promise<boolean>> = [];
  const sockets = Array.from({ length: 20 }, () => {
    const socket = connect(app.port, '127.0.0.1');
    closedByServer.push(new Promise((resolve) => socket.on('close', () => resolve(!destroying))));
    socket.on('error', () => {});
    socket.write('GET /v1/workspaces/alpha/credentials HTTP/1.1\r\n');
    return socket;
  });
  t.teardown(() => {
    destroying = true;
    for (const s of sockets) s.destroy();
  });
  const drip = setInterval(() => {
    for (const s of sockets) if (s.writable) s.write('X-Slow: a\r\n');
  }, 100);
  t.teardown(() => clearInterval(drip));
  for (let i = 0; i < 10; i++)
    t.equal((await app.credentials('alpha')).status, 200, `valid request ${i} while 20 clients drip`);
  const closed = await Promise.all(closedByServer);
  clearInterval(drip);
  t.same(closed, Array(20).fill(true), 'every dripping client was disconnected by the server');
});

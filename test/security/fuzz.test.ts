/**
 * Malformed requests, over raw sockets, against a real `serve` child: random methods, targets,
 * versions, Host/Authorization/Origin/body headers (missing, repeated, huge, bad UTF-8, NUL,
 * header injection), junk header lines, odd line endings, bodies, and delivery in dribbles, cut
 * short or stalled, while a few clients drip bytes the whole time. Bounded in count and in time;
 * the seed is printed (EODH_CREDD_FUZZ_SEED reproduces a run).
 *
 * Checked for every answer: never a 5xx; a secret only where an independent reading of the raw
 * request says the guards allow it (GET, a Host we serve, once; the workspace's own token, once;
 * no Origin, no cross-site Sec-Fetch-Site, no body); client tokens, the admin token and the master
 * key never. Every 25th request is a valid one and must be served. Afterwards the daemon is alive,
 * serves a valid client, and its log holds no secret.
 */

import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { createInstallation, getCredentials } from './fixtures/installation.js';

const MAX_REQUESTS = 1_500;
const BUDGET_MS = 30_000;
const CONCURRENCY = 6;
const SLOW_CLIENTS = 8;
const SEED = Number(process.env.EODH_CREDD_FUZZ_SEED ?? 20_261_127);

/** mulberry32: small, seedable, good enough to pick cases. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const chance = (p: number) => next() < p;
  return { next, int, pick, chance };
}

interface Context {
  readonly port: number;
  readonly host: string;
  readonly tokens: Readonly<Record<'alpha' | 'beta', string>>;
}

interface Generated {
  readonly bytes: Buffer;
  readonly delivery: 'whole' | 'dribble' | 'cut' | 'stall';
  readonly head: boolean;
}

function generate(r: ReturnType<typeof prng>, ctx: Context, valid: boolean): Generated {
  const { host, tokens } = ctx;
  if (valid) {
    const text = `GET /v1/workspaces/alpha/credentials HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${tokens.alpha}\r\nAccept: application/json\r\n\r\n`;
    return { bytes: Buffer.from(text, 'latin1'), delivery: 'whole', head: false };
  }
  // Half the requests are well-formed HTTP with one thing changed that a guard looks at; the
  // other half may break anything, several things at once.
  if (r.chance(0.5)) return oneChange(r, ctx);
  const wild = true;
  const method = wild
    ? r.pick(['GET', 'GET', 'HEAD', 'POST', 'TRACE', 'CONNECT', 'get', 'G\x00T', 'X'.repeat(64), ''])
    : r.pick(['GET', 'GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'PROPFIND']);
  let target = r.pick([
    '/v1/workspaces/alpha/credentials',
    '/v1/workspaces/alpha/credentials',
    '/v1/workspaces/alpha/credentials',
    '/v1/workspaces/alpha/token',
    '/v1/workspaces/beta/credentials',
    '/v1/admin/status',
    '/v1/admin/workspaces/alpha/refresh',
    '/healthz',
    '/',
    '*',
    `http://evil.example/v1/workspaces/alpha/credentials`,
    `http://${host}/v1/workspaces/alpha/credentials`,
    '//v1/workspaces/alpha/credentials',
    '/v1/workspaces/../admin/status',
  ]);
  if (r.chance(0.4)) {
    const insert = wild
      ? r.pick([
          '%00',
          '%ff',
          '\xff\xfe',
          'é',
          'а',
          '\u200b',
          ' ',
          '%',
          '%%',
          'A'.repeat(r.int(20_000)),
          '\r\n',
          '\x00',
          '#frag',
        ])
      : r.pick([
          '%00',
          '%ff',
          '%C0%AE',
          '%D0%B0',
          '%E2%80%8B',
          '..',
          '/',
          '%2F',
          '%2e%2e',
          '?x=1',
          '?',
          'A'.repeat(r.int(200)),
        ]);
    const at = r.int(target.length + 1);
    target = target.slice(0, at) + insert + target.slice(at);
  }
  const version = wild
    ? r.pick(['HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'HTTP/0.9', 'HTTX/1.1', ''])
    : r.pick(['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0']);
  const headers: string[] = [];
  const hostChoice = r.pick([
    'valid',
    'valid',
    'valid',
    'localhost',
    'evil',
    'empty',
    'missing',
    'twice',
    'twice-evil-first',
    ...(wild ? ['nul', 'long'] : []),
  ]);
  if (hostChoice === 'valid') headers.push(`Host: ${host}`);
  if (hostChoice === 'localhost') headers.push(`Host: localhost:${ctx.port}`);
  if (hostChoice === 'evil') headers.push('Host: evil.example');
  if (hostChoice === 'empty') headers.push('Host:');
  if (hostChoice === 'twice') headers.push(`Host: ${host}`, 'Host: evil.example');
  if (hostChoice === 'twice-evil-first') headers.push('Host: evil.example', `Host: ${host}`);
  if (hostChoice === 'nul') headers.push(`Host: ${host}\x00`);
  if (hostChoice === 'long') headers.push(`Host: ${'h'.repeat(r.int(20_000))}`);
  const authChoice = r.pick([
    'alpha',
    'alpha',
    'alpha',
    'bearer',
    'beta',
    'missing',
    'garbage',
    'garbage',
    'twice',
    'long',
    ...(wild ? ['huge', 'binary', 'injected', 'padded'] : []),
  ]);
  if (authChoice === 'alpha') headers.push(`Authorization: ${tokens.alpha}`);
  if (authChoice === 'bearer') headers.push(`Authorization: Bearer ${tokens.alpha}`);
  if (authChoice === 'beta') headers.push(`Authorization: ${tokens.beta}`);
  if (authChoice === 'garbage') headers.push(`Authorization: ${Math.floor(r.next() * 1e12).toString(36)}`);
  if (authChoice === 'long') headers.push(`Authorization: ${'t'.repeat(r.int(4_000))}`);
  if (authChoice === 'huge') headers.push(`Authorization: ${'t'.repeat(r.int(30_000))}`);
  if (authChoice === 'binary') headers.push(`Authorization: \xff\xfe${tokens.alpha.slice(2)}`);
  if (authChoice === 'twice') headers.push('Authorization: nope', `Authorization: ${tokens.alpha}`);
  if (authChoice === 'injected') headers.push(`Authorization: nope\r\nAuthorization: ${tokens.alpha}`);
  if (authChoice === 'padded') headers.push(`Authorization: ${tokens.alpha}\x00`);
  if (r.chance(0.15)) headers.push(`Origin: ${r.pick(['http://evil.example', 'null', `http://${host}`, ''])}`);
  if (r.chance(0.15))
    headers.push(
      `Sec-Fetch-Site: ${r.pick(['none', 'cross-site', 'same-origin', 'same-site', ...(wild ? ['\xff'] : [])])}`,
    );
  let body = '';
  if (r.chance(0.2)) {
    const length = wild
      ? r.pick(['-1', 'abc', '99999999999', '5\r\nContent-Length: 6', ' 5'])
      : r.pick(['0', '0', '5', '3']);
    headers.push(`Content-Length: ${length}`);
    body = 'x'.repeat(r.int(10));
  }
  if (r.chance(0.1)) {
    headers.push(
      `Transfer-Encoding: ${r.pick(['chunked', 'gzip, chunked', 'x', 'chunked\r\nTransfer-Encoding: identity'])}`,
    );
    body = r.pick(['0\r\n\r\n', '5\r\nhello\r\n0\r\n\r\n', 'zz\r\n', 'GET / HTTP/1.1\r\n\r\n']);
  }
  for (let i = r.chance(0.1) ? r.int(300) : r.int(3); i > 0; i--) {
    headers.push(
      wild
        ? r.pick([
            'Bad Header: x',
            'X-Nul: a\x00b',
            'X-Del: \x7f',
            'no-colon-here',
            ': empty-name',
            'X-Fold: a\r\n  continued',
            `X-Utf8: \xc3\x28\xa0\xa1`,
            `X-Big: ${'b'.repeat(r.int(12_000))}`,
          ])
        : r.pick([
            `X-Fuzz-${i}: ${r.int(1e9)}`,
            'Accept: application/json',
            'Connection: keep-alive',
            'User-Agent: aws-sdk-js/3',
            `X-Utf8: \xc3\xa9`,
          ]),
    );
  }
  const eol = wild ? r.pick(['\r\n', '\r\n', '\n', '\r']) : '\r\n';
  const text = `${method} ${target} ${version}${eol}${headers.join(eol)}${eol}${eol}${body}`;
  return {
    bytes: Buffer.from(text, 'latin1'),
    delivery: r.pick(['whole', 'whole', 'whole', 'whole', 'whole', 'dribble', 'cut', 'stall']),
    head: method === 'HEAD',
  };
}

/** A valid request with exactly one aspect changed. */
function oneChange(r: ReturnType<typeof prng>, ctx: Context): Generated {
  const { host, tokens } = ctx;
  let method = 'GET';
  let target = '/v1/workspaces/alpha/credentials';
  const version = r.pick(['HTTP/1.1', 'HTTP/1.0']);
  const headers = new Map<string, string[]>([
    ['Host', [host]],
    ['Authorization', [tokens.alpha]],
    ['Accept', ['application/json']],
  ]);
  let body = '';
  switch (
    r.pick(['host', 'auth', 'auth', 'auth', 'origin', 'fetch-site', 'method', 'target', 'target', 'body', 'none'])
  ) {
    case 'host':
      headers.set(
        'Host',
        r.pick([
          ['evil.example'],
          [`evil.example:${ctx.port}`],
          [`localhost:${ctx.port}`],
          [`[::1]:${ctx.port}`],
          [`127.0.0.1:${ctx.port + 1}`],
          ['127.0.0.1'],
          [''],
          [],
          [host, 'evil.example'],
          [`127.0.0.1.nip.io:${ctx.port}`],
        ]),
      );
      break;
    case 'auth':
      headers.set(
        'Authorization',
        r.pick([
          [],
          [''],
          ['nope'],
          [`Bearer ${tokens.alpha}`],
          [tokens.beta],
          [tokens.alpha.slice(1)],
          [`${tokens.alpha} `],
          [`bearer ${tokens.alpha}`],
          ['t'.repeat(r.int(6_000))],
          ['nope', tokens.alpha],
        ]),
      );
      break;
    case 'origin':
      headers.set('Origin', [r.pick(['http://evil.example', 'null', `http://${host}`, ''])]);
      break;
    case 'fetch-site':
      headers.set('Sec-Fetch-Site', [r.pick(['none', 'cross-site', 'same-origin', 'same-site'])]);
      break;
    case 'method':
      method = r.pick(['HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'PROPFIND', 'MKCOL']);
      break;
    case 'target':
      target = r.pick([
        '/v1/workspaces/beta/credentials',
        '/v1/workspaces/alpha/token',
        '/v1/workspaces/gamma/credentials',
        '/v1/workspaces/ALPHA/credentials',
        '/v1/workspaces/alph%D0%B0/credentials',
        '/v1/workspaces/%61lpha/credentials',
        '/v1/workspaces/alpha%2F..%2Fbeta/credentials',
        '/v1/workspaces/alpha/credentials?x=1',
        '/v1/workspaces/alpha/credentials/',
        '/v1/admin/status',
        '/v1/workspaces/%C0%AE/credentials',
        `/v1/workspaces/${'a'.repeat(r.int(300))}/credentials`,
      ]);
      break;
    case 'body':
      headers.set('Content-Length', [r.pick(['0', '3', '5'])]);
      body = 'abc';
      break;
  }
  const lines = [...headers].flatMap(([name, values]) => values.map((v) => `${name}: ${v}`));
  const text = `${method} ${target} ${version}\r\n${lines.join('\r\n')}\r\n\r\n${body}`;
  return {
    bytes: Buffer.from(text, 'latin1'),
    delivery: r.pick(['whole', 'whole', 'whole', 'dribble']),
    head: method === 'HEAD',
  };
}

/** An independent reading of the raw request: which secrets may its answer carry? */
function mayReceive(bytes: Buffer, ctx: Context): 'alpha-s3' | 'alpha-key' | 'beta-s3' | 'beta-key' | null {
  const text = bytes.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return null;
  // Bytes after the header block are a body only when Content-Length or Transfer-Encoding says so
  // (RFC 9112 §6.3; both are checked below). Otherwise they are the next request on the
  // connection, answered on its own: the request before them is complete and may be served.
  const [requestLine, ...lines] = text.slice(0, end).split('\r\n');
  const line = /^GET (\/[^ ?#]*)(\?[^ #]*)? HTTP\/1\.[01]$/.exec(requestLine ?? '');
  if (!line) return null;
  let path: string;
  try {
    path = decodeURIComponent(line[1]!); // %61lpha is alpha
  } catch {
    return null;
  }
  const match = /^\/v1\/workspaces\/(alpha|beta)\/(credentials|token)$/.exec(path);
  if (!match) return null;
  const workspace = match[1] as 'alpha' | 'beta';
  const values = (name: string) =>
    lines.filter((l) => l.toLowerCase().startsWith(`${name}:`)).map((l) => l.slice(name.length + 1).trim());
  const hosts = values('host');
  if (
    hosts.length !== 1 ||
    ![`127.0.0.1:${ctx.port}`, `localhost:${ctx.port}`, `[::1]:${ctx.port}`].includes(hosts[0]!.toLowerCase())
  )
    return null;
  const auth = values('authorization');
  if (auth.length !== 1 || (auth[0] !== ctx.tokens[workspace] && auth[0] !== `Bearer ${ctx.tokens[workspace]}`))
    return null;
  if (values('origin').length > 0) return null;
  const site = values('sec-fetch-site');
  if (site.length > 1 || (site.length === 1 && site[0] !== 'none')) return null;
  if (values('transfer-encoding').length > 0) return null;
  const length = values('content-length');
  if (length.length > 1 || (length.length === 1 && length[0] !== '0')) return null;
  return `${workspace}-${match[2] === 'credentials' ? 's3' : 'key'}`;
}

/** Send, then collect until the server closes, one full response has arrived, or time is up. */
function exchange(port: number, request: Generated, r: ReturnType<typeof prng>): Promise<string> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(received.toString('latin1'));
    };
    const timer = setTimeout(finish, request.delivery === 'stall' ? 1_500 : 3_000);
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const text = received.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
      if (request.head || (length && received.length >= end + 4 + Number(length[1]))) finish();
    });
    const { bytes } = request;
    switch (request.delivery) {
      case 'whole':
        socket.write(bytes);
        break;
      case 'cut':
        socket.write(bytes.subarray(0, r.int(bytes.length)));
        setTimeout(finish, 50);
        break;
      case 'stall':
        socket.write(bytes.subarray(0, r.int(bytes.length)));
        break;
      case 'dribble': {
        const cuts = [
          0,
          ...Array.from({ length: 1 + r.int(6) }, () => r.int(bytes.length)).sort((x, y) => x - y),
          bytes.length,
        ];
        let delay = 0;
        for (let i = 0; i < cuts.length - 1; i++) {
          const piece = bytes.subarray(cuts[i], cuts[i + 1]);
          delay += r.int(30);
          setTimeout(() => !settled && socket.writable && socket.write(piece), delay);
        }
        break;
      }
    }
  });
}

t.test(
  'fuzz: malformed requests never get a 5xx, never get a secret they should not, and the daemon keeps serving',
  async (t) => {
    t.comment(`seed ${SEED} (set EODH_CREDD_FUZZ_SEED to reproduce)`);
    const inst = await createInstallation(t);
    const alpha = await inst.addWorkspace('alpha');
    const beta = await inst.addWorkspace('beta');
    const daemon = await inst.serve();
    const first = await getCredentials(daemon.url, 'alpha', alpha.clientToken);
    t.equal(first.status, 200);
    const alphaS3 = JSON.parse(first.body) as { SecretAccessKey: string; Token: string };
    const betaS3 = JSON.parse((await getCredentials(daemon.url, 'beta', beta.clientToken)).body) as {
      SecretAccessKey: string;
      Token: string;
    };
    const ctx: Context = {
      port: daemon.port,
      host: `127.0.0.1:${daemon.port}`,
      tokens: { alpha: alpha.clientToken, beta: beta.clientToken },
    };
    const guarded: Record<string, 'alpha-s3' | 'alpha-key' | 'beta-s3' | 'beta-key' | 'never'> = {
      [alphaS3.SecretAccessKey]: 'alpha-s3',
      [alphaS3.Token]: 'alpha-s3',
      [betaS3.SecretAccessKey]: 'beta-s3',
      [betaS3.Token]: 'beta-s3',
      [alpha.apiKey]: 'alpha-key',
      [beta.apiKey]: 'beta-key',
      [alpha.clientToken]: 'never',
      [beta.clientToken]: 'never',
      [readFileSync(inst.paths.adminToken, 'utf8').trim()]: 'never',
      [readFileSync(inst.paths.masterKey, 'utf8').trim()]: 'never',
    };

    // Clients that send a byte now and then, for as long as the fuzz runs.
    const slow = Array.from({ length: SLOW_CLIENTS }, () => {
      const socket = connect(daemon.port, '127.0.0.1');
      socket.on('error', () => {});
      return socket;
    });
    const slowRequest = `GET /v1/workspaces/alpha/credentials HTTP/1.1\r\nHost: ${ctx.host}\r\nX-Slow: ${'s'.repeat(200)}`;
    let slowAt = 0;
    const drip = setInterval(() => {
      const byte = slowRequest[slowAt++ % slowRequest.length]!;
      for (const s of slow) if (s.writable) s.write(byte);
    }, 200);
    t.teardown(() => {
      clearInterval(drip);
      for (const s of slow) s.destroy();
    });

    const r = prng(SEED);
    const started = Date.now();
    const statuses = new Map<string, number>();
    const failures: string[] = [];
    let sent = 0;
    let validServed = 0;
    let validSent = 0;
    const worker = async () => {
      while (sent < MAX_REQUESTS && Date.now() - started < BUDGET_MS) {
        const index = sent++;
        const valid = index % 25 === 0;
        const request = generate(r, ctx, valid);
        const answer = await exchange(daemon.port, request, r);
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? (answer.length === 0 ? 'none' : 'garbled');
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        const shown = () => JSON.stringify(request.bytes.toString('latin1').slice(0, 300));
        if (valid) {
          validSent++;
          if (status === '200') validServed++;
          else failures.push(`valid request ${index} got ${status}`);
        }
        if (status.startsWith('5')) failures.push(`request ${index} got ${status}: ${shown()}`);
        if (status === 'garbled')
          failures.push(`request ${index} got a garbled answer: ${JSON.stringify(answer.slice(0, 100))}`);
        const allowed = mayReceive(request.bytes, ctx);
        for (const [value, scope] of Object.entries(guarded)) {
          if (!answer.includes(value)) continue;
          if (scope === 'never' || scope !== allowed)
            failures.push(`request ${index} received a ${scope} secret it may not have: ${shown()}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    clearInterval(drip);
    const elapsed = Date.now() - started;
    t.comment(
      `${sent} requests in ${elapsed} ms; answers: ${[...statuses]
        .sort()
        .map(([s, n]) => `${s}×${n}`)
        .join(' ')}`,
    );

    t.same(failures.slice(0, 20), [], 'no 5xx, no secret out of place, every valid request served');
    t.ok(sent >= 50, `the fuzz ran (${sent} requests)`);
    t.equal(validServed, validSent, `${validSent} valid requests among them, all served`);
    t.equal(daemon.child.exitCode, null, 'the daemon is still running');
    t.equal(daemon.child.signalCode, null);
    const after = await getCredentials(daemon.url, 'alpha', alpha.clientToken);
    t.equal(after.status, 200, 'a valid client is served afterwards');
    t.equal((await fetch(`${daemon.url}/healthz`)).status, 200);

    await daemon.stop();
    const logs = daemon.output();
    for (const [value, scope] of Object.entries(guarded))
      t.notOk(logs.includes(value), `no ${scope} secret in the log`);
  },
);

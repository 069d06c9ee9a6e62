/**
 * The token checks cannot leak through timing: the presented token is hashed first (by the guard,
 * once per connection), and only fixed-length SHA-256 digests reach the comparison, which is
 * crypto.timingSafeEqual. This tests the code path (with node:crypto spied on through
 * t.mockImport), not timings.
 */

import * as crypto from 'node:crypto';
import t, { type Test } from 'tap';
import { createLogger } from '../../src/log.js';
import type { Broker as BrokerType } from '../../src/scheduler/broker.js';
import type { Store, WorkspaceRecord } from '../../src/store/store.js';

interface Call {
  readonly fn: 'hash-update' | 'timingSafeEqual';
  readonly args: unknown[];
}

function spiedCrypto(calls: Call[]) {
  return {
    ...crypto,
    createHash(algorithm: string) {
      const hash = crypto.createHash(algorithm);
      const update = hash.update.bind(hash);
      hash.update = ((data: crypto.BinaryLike, encoding?: crypto.Encoding) => {
        calls.push({ fn: 'hash-update', args: [algorithm, data] });
        return encoding === undefined ? update(data) : update(data as string, encoding);
      }) as typeof hash.update;
      return hash;
    },
    // The one-shot form, which the token checks use.
    hash(algorithm: string, data: crypto.BinaryLike, encoding: crypto.BinaryToTextEncoding = 'hex') {
      calls.push({ fn: 'hash-update', args: [algorithm, data] });
      return crypto.hash(algorithm, data, encoding);
    },
    timingSafeEqual(a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) {
      calls.push({ fn: 'timingSafeEqual', args: [a, b] });
      return crypto.timingSafeEqual(a, b);
    },
  };
}

/** The token digests (src/store/client-tokens.ts) over the spied node:crypto. */
function spiedTokens(t: Test, calls: Call[]) {
  return t.mockImport<typeof import('../../src/store/client-tokens.js')>('../../src/store/client-tokens.js', {
    'node:crypto': spiedCrypto(calls),
  });
}

const digest = (token: string) => crypto.createHash('sha256').update(token, 'utf8').digest();
const silent = createLogger({ level: 'silent', format: 'json' });

function record(name: string, token: string): WorkspaceRecord {
  return {
    id: `id-${name}`,
    name,
    hubUrl: 'https://hub.example',
    region: 'eu-west-2',
    clientTokenId: `ct-${name}`,
    clientTokenHash: digest(token),
    fileSink: null,
    s3Bucket: null,
    s3Prefix: null,
    createdAt: 0,
  };
}

t.test('Broker.authenticate compares fixed-length digests, in constant time', async (t) => {
  const calls: Call[] = [];
  const { Broker } = await t.mockImport<typeof import('../../src/scheduler/broker.js')>(
    '../../src/scheduler/broker.js',
    {
      'node:crypto': spiedCrypto(calls),
      '../../src/store/client-tokens.js': await spiedTokens(t, calls),
    },
  );
  const alphaToken = crypto.randomBytes(32).toString('base64url');
  const betaToken = crypto.randomBytes(32).toString('base64url');
  const records = [record('alpha', alphaToken), record('beta', betaToken)];
  const store = {
    listWorkspaces: () => records,
    allAccess: () => new Map(),
    activeApiKey: () => undefined,
    loadS3: () => undefined,
    recordFailure: () => {},
  } as unknown as Store;
  const broker: BrokerType = new Broker({
    store,
    hubFor: () => {
      throw new Error('no hub here');
    },
    clock: { now: () => 0 },
    random: () => 0.5,
    logger: silent,
    backoff: { initialMs: 1000, maxMs: 1000 },
    requestWaitMs: 0,
  });
  broker.sync();

  const presented = [
    ['alpha', alphaToken, true],
    ['alpha', alphaToken.slice(0, -1), false],
    ['alpha', `${alphaToken}x`, false],
    ['alpha', 'x', false],
    ['alpha', 'x'.repeat(10_000), false],
    ['alpha', alphaToken.slice(0, 32), false], // as long as a digest: a raw compare would be possible
    ['alpha', betaToken, false],
    ['alpha', alphaToken.slice(0, 31) + (alphaToken[31] === 'a' ? 'b' : 'a') + alphaToken.slice(32), false],
  ] as const;
  for (const [workspace, token, ok] of presented) {
    calls.length = 0;
    const result = broker.authenticate(workspace, digest(token));
    t.equal(result.ok, ok, `${token.length} characters: ${ok ? 'accepted' : 'refused'}`);
    const compares = calls.filter((c) => c.fn === 'timingSafeEqual');
    t.equal(compares.length, 1, 'exactly one comparison, whatever the token');
    const [a, b] = compares[0]!.args as Buffer[];
    t.equal(a!.length, 32, 'fixed-length digest on one side');
    t.equal(b!.length, 32, 'and on the other');
    // What is compared is the presented token's digest against alpha's stored digest, nothing else.
    t.same(
      [a!, b!].map((x) => x.toString('hex')).sort(),
      [digest(token), records[0]!.clientTokenHash].map((x) => x.toString('hex')).sort(),
      "the presented token's digest against the stored digest",
    );
  }
  t.same(
    broker.authenticate('gamma', digest(alphaToken)),
    { ok: false, code: 'forbidden' },
    'an unknown workspace: refused',
  );
});

t.test('the guard hashes a presented token before anything compares it, once per connection', async (t) => {
  const calls: Call[] = [];
  const { ConnectionDigests } = await t.mockImport<typeof import('../../src/server/guard.js')>(
    '../../src/server/guard.js',
    {
      'node:crypto': spiedCrypto(calls),
      '../../src/store/client-tokens.js': await spiedTokens(t, calls),
    },
  );
  const digests = new ConnectionDigests();
  const hashed = () => calls.filter((c) => c.fn === 'hash-update').map((c) => c.args[1]);
  const first = {};
  const second = {};
  const token = crypto.randomBytes(32).toString('base64url');
  for (const presented of [token, 'x', 'x'.repeat(10_000)]) {
    calls.length = 0;
    const made = digests.of(first, presented);
    t.same(hashed(), [presented], `${presented.length} characters: hashed with SHA-256`);
    t.equal(calls.find((c) => c.fn === 'hash-update')?.args[0], 'sha256');
    t.same(made, digest(presented), 'its 32-byte digest is what the checks get');
  }
  calls.length = 0;
  t.same(digests.of(first, 'x'.repeat(10_000)), digest('x'.repeat(10_000)));
  t.same(hashed(), [], 'the same token again on the same connection: not hashed again');
  t.same(digests.of(first, token), digest(token));
  t.same(hashed(), [token], 'another token on it: hashed');
  calls.length = 0;
  t.same(digests.of(second, token), digest(token));
  t.same(hashed(), [token], 'the same token on another connection: hashed for that one');
  t.equal(
    calls.filter((c) => c.fn === 'timingSafeEqual').length,
    0,
    'nothing is compared here: only digests reach the checks',
  );
});

t.test('the admin token check compares digests the same way', async (t) => {
  const calls: Call[] = [];
  const { checkDigest } = await t.mockImport<typeof import('../../src/server/guard.js')>('../../src/server/guard.js', {
    'node:crypto': spiedCrypto(calls),
    '../../src/store/client-tokens.js': await spiedTokens(t, calls),
  });
  const admin = crypto.randomBytes(32).toString('base64url');
  for (const [token, ok] of [
    [admin, true],
    ['', false],
    ['x'.repeat(5_000), false],
    [admin.slice(1), false],
  ] as const) {
    calls.length = 0;
    t.equal(checkDigest(digest(token), digest(admin)).ok, ok, `${token.length} characters`);
    const compares = calls.filter((c) => c.fn === 'timingSafeEqual');
    t.equal(compares.length, 1);
    t.same(
      (compares[0]!.args as Buffer[]).map((b) => b.length),
      [32, 32],
    );
  }
  t.same(checkDigest(digest(admin), undefined), { ok: false, code: 'forbidden' }, 'no admin token configured: closed');
});

t.test('the database keeps digests, never tokens', async (t) => {
  const { newClientToken } = await import('../../src/store/client-tokens.js');
  const made = newClientToken();
  t.equal(made.hash.length, 32);
  t.same(made.hash, digest(made.token));
  t.notOk(made.hash.includes(Buffer.from(made.token)));
  t.match(made.id, /^ct-[0-9a-f]{8}$/, 'the public id is separate random bytes, not derived from the token');
});

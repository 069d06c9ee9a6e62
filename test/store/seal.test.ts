import { randomBytes } from 'node:crypto';
import t from 'tap';
import { cellAad, keyIdOf, MASTER_KEY_BYTES, open, SealError, seal, sealingKey } from '../../src/store/seal.js';
import { sealReason } from '../helpers/seal.js';

const key = sealingKey(Buffer.alloc(MASTER_KEY_BYTES, 7));
const otherKey = sealingKey(Buffer.alloc(MASTER_KEY_BYTES, 8));
const aad = cellAad('s3_credentials', 'sealed_secret', 'row-1');

/** Split an envelope into its parts, decoding nonce and body. */
function parts(envelope: string) {
  const [version, keyId, nonceText, bodyText] = envelope.split(':') as [string, string, string, string];
  return { version, keyId, nonce: Buffer.from(nonceText, 'base64url'), body: Buffer.from(bodyText, 'base64url') };
}

function join(p: { version: string; keyId: string; nonce: Buffer; body: Buffer }): string {
  return `${p.version}:${p.keyId}:${p.nonce.toString('base64url')}:${p.body.toString('base64url')}`;
}

t.test('sealingKey', async (t) => {
  t.throws(() => sealingKey(Buffer.alloc(31)), /32 bytes/);
  t.throws(() => sealingKey(Buffer.alloc(33)), /32 bytes/);
  const again = sealingKey(Buffer.alloc(MASTER_KEY_BYTES, 7));
  t.equal(again.id, key.id, 'id is deterministic');
  t.match(key.id, /^[0-9a-f]{16}$/);
  t.not(key.id, otherKey.id, 'different keys, different ids');
  t.notOk(key.encryptionKey.equals(Buffer.alloc(MASTER_KEY_BYTES, 7)), 'encryption key is derived, not the master key');
  t.equal(key.encryptionKey.length, 32);
});

t.test('round trip', async (t) => {
  for (const plaintext of [
    '',
    'a',
    'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    'ünïcødé ✓ 🔑 日本語 \u0000 nul',
    'x'.repeat(10_000),
  ]) {
    const envelope = seal(key, plaintext, aad);
    t.equal(open(key, envelope, aad), plaintext, `round trip of ${JSON.stringify(plaintext.slice(0, 20))}`);
    if (plaintext.length >= 8) t.notOk(envelope.includes(plaintext), 'plaintext is not in the envelope');
    t.equal(keyIdOf(envelope), key.id, 'envelope names its key');
    t.match(envelope, /^v1:[0-9a-f]{16}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]+$/);
  }
});

t.test('two seals of the same plaintext differ', async (t) => {
  const a = seal(key, 'same secret', aad);
  const b = seal(key, 'same secret', aad);
  t.not(a, b);
  t.not(parts(a).nonce.toString('hex'), parts(b).nonce.toString('hex'), 'nonces differ');
  t.equal(open(key, a, aad), open(key, b, aad));
});

t.test('flipping any bit of nonce, ciphertext or tag is tampering', async (t) => {
  const envelope = seal(key, 'secret value', aad);
  const p = parts(envelope);
  t.equal(p.nonce.length, 12);
  t.equal(p.body.length, 'secret value'.length + 16, 'ciphertext + 16-byte tag');
  let checked = 0;
  for (const field of ['nonce', 'body'] as const) {
    for (let i = 0; i < p[field].length; i++) {
      for (const bit of [0x01, 0x80]) {
        const copy = Buffer.from(p[field]);
        copy[i] = copy[i]! ^ bit;
        const tampered = join({ ...p, [field]: copy });
        t.not(tampered, envelope);
        const reason = sealReason(() => open(key, tampered, aad));
        if (reason !== 'tampered') t.fail(`${field} byte ${i} bit ${bit}: ${reason}`);
        checked++;
      }
    }
  }
  t.equal(checked, 2 * (12 + 12 + 16));
  // Truncating or extending the body is tampering too (as long as a tag's worth remains).
  t.equal(
    sealReason(() => open(key, join({ ...p, body: p.body.subarray(1) }), aad)),
    'tampered',
  );
  t.equal(
    sealReason(() => open(key, join({ ...p, body: Buffer.concat([p.body, Buffer.from([0])]) }), aad)),
    'tampered',
  );
  // Empty plaintext: the tag alone is still authenticated.
  const empty = parts(seal(key, '', aad));
  t.equal(empty.body.length, 16);
  empty.body[0] = empty.body[0]! ^ 1;
  t.equal(
    sealReason(() => open(key, join(empty), aad)),
    'tampered',
  );
});

t.test('changing any character of the envelope text never yields a successful open', async (t) => {
  // The text form must not be malleable: an altered envelope either fails or is refused,
  // even where base64 decoding would ignore the change (padding bits, stray characters).
  const envelope = seal(key, 'secret!', aad); // 7 + 16 = 23 bytes: the last base64 char carries spare bits
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.';
  const failures: string[] = [];
  for (let i = 0; i < envelope.length; i++) {
    for (const c of alphabet) {
      if (c === envelope[i]) continue;
      const altered = envelope.slice(0, i) + c + envelope.slice(i + 1);
      if (sealReason(() => open(key, altered, aad)) === 'opened') failures.push(`${i}:${c}`);
    }
  }
  t.same(failures, [], 'no altered envelope opens');
  const inserted = envelope.replace(/:([^:]+)$/, ':!$1');
  t.equal(
    sealReason(() => open(key, inserted, aad)),
    'malformed',
    'stray character in the body',
  );
});

t.test('wrong additional data fails', async (t) => {
  const envelope = seal(key, 'secret', aad);
  t.equal(
    sealReason(() => open(key, envelope, cellAad('s3_credentials', 'sealed_secret', 'row-2'))),
    'tampered',
    'other row',
  );
  t.equal(
    sealReason(() => open(key, envelope, cellAad('s3_credentials', 'sealed_session_token', 'row-1'))),
    'tampered',
    'other column',
  );
  t.equal(
    sealReason(() => open(key, envelope, cellAad('api_keys', 'sealed_secret', 'row-1'))),
    'tampered',
    'other table',
  );
  t.equal(
    sealReason(() => open(key, envelope, '')),
    'tampered',
    'no aad',
  );
  t.equal(open(key, envelope, aad), 'secret', 'right aad still opens');
});

t.test('wrong key', async (t) => {
  const envelope = seal(key, 'secret', aad);
  t.throws(() => open(otherKey, envelope, aad), { name: 'SealError', reason: 'wrong_key' });
  t.throws(() => open(sealingKey(randomBytes(MASTER_KEY_BYTES)), envelope, aad), {
    name: 'SealError',
    reason: 'wrong_key',
  });
  // A forged key id that matches the wrong key does not help: the ciphertext still fails.
  const forged = join({ ...parts(envelope), keyId: otherKey.id });
  t.equal(
    sealReason(() => open(otherKey, forged, aad)),
    'tampered',
  );
  t.equal(
    sealReason(() => open(key, forged, aad)),
    'wrong_key',
  );
});

t.test('malformed envelopes', async (t) => {
  const good = seal(key, 'secret', aad);
  const p = parts(good);
  const nonce = p.nonce.toString('base64url');
  const body = p.body.toString('base64url');
  const cases: Array<[string, string]> = [
    ['empty', ''],
    ['plain text', 'secret'],
    ['unknown version', `v2:${key.id}:${nonce}:${body}`],
    ['missing version', `:${key.id}:${nonce}:${body}`],
    ['missing key id', `v1::${nonce}:${body}`],
    ['missing nonce', `v1:${key.id}::${body}`],
    ['missing body', `v1:${key.id}:${nonce}:`],
    ['too few parts', `v1:${key.id}:${nonce}`],
    ['extra part', `${good}:x`],
    ['trailing colon', `${good}:`],
    ['short nonce', `v1:${key.id}:${p.nonce.subarray(1).toString('base64url')}:${body}`],
    ['long nonce', `v1:${key.id}:${Buffer.concat([p.nonce, Buffer.alloc(3)]).toString('base64url')}:${body}`],
    ['body shorter than a tag', `v1:${key.id}:${nonce}:${p.body.subarray(0, 15).toString('base64url')}`],
    ['nonce not base64', `v1:${key.id}:!!!!!!!!!!!!!!!!:${body}`],
    ['padded standard base64 body', `v1:${key.id}:${nonce}:${p.body.toString('base64')}`],
    ['whitespace', `v1:${key.id}:${nonce}:${body} `],
  ];
  for (const [what, envelope] of cases) {
    t.equal(
      sealReason(() => open(key, envelope, aad)),
      'malformed',
      what,
    );
  }
  t.throws(() => open(key, '', aad), { message: 'sealed value is malformed' });
});

t.test('SealError', async (t) => {
  const err = new SealError('m', 'tampered');
  t.ok(err instanceof Error);
  t.equal(err.name, 'SealError');
  t.equal(err.reason, 'tampered');
  t.equal(keyIdOf('garbage'), undefined);
});

import t from 'tap';
import {
  InvalidAnswer,
  parseCreatedToken,
  parseS3Credentials,
  parseTokenList,
  parseTokenRecord,
} from '../../src/upstream/responses.js';
import { parseTimestamp } from '../../src/upstream/time.js';

const NOW = Date.parse('2025-02-18T16:00:00Z');
const good = {
  accessKeyId: 'ASIAEXAMPLEEXAMPLE12',
  secretAccessKey: 'abc/def+ghi',
  sessionToken: 'FwoGZXIvYXdzE==',
  expiration: '2025-02-18T16:57:23Z',
};

t.test('timestamps', async (t) => {
  t.equal(parseTimestamp('2025-02-18T16:57:23Z', true), Date.parse('2025-02-18T16:57:23Z'));
  t.equal(parseTimestamp('2025-02-18T16:57:23.5Z', true), Date.parse('2025-02-18T16:57:23.500Z'));
  t.equal(
    parseTimestamp('2025-02-18T16:57:23.123456789Z', true),
    Date.parse('2025-02-18T16:57:23.123Z'),
    'Go nanoseconds',
  );
  t.equal(parseTimestamp('2025-02-18T17:57:23+01:00', true), Date.parse('2025-02-18T16:57:23Z'));
  t.equal(parseTimestamp('2025-02-18t16:57:23z', true), Date.parse('2025-02-18T16:57:23Z'), 'lower-case t and z');
  t.equal(parseTimestamp('2025-02-18T16:57:23', true), null, 'zone required');
  t.equal(parseTimestamp('2025-02-18T16:57:23', false), Date.parse('2025-02-18T16:57:23Z'), 'zone-less read as UTC');
  for (const bad of [
    '2025-02-30T00:00:00Z',
    '2025-02-18T24:00:00Z',
    '2025-02-18T16:57:60Z',
    '2025-13-01T00:00:00Z',
    '2025-02-18 16:57:23Z',
    'Tue, 18 Feb 2025 16:57:23 GMT',
    '1739897843',
    '2025-02-18T16:57:23+25:00',
    '',
  ]) {
    t.equal(parseTimestamp(bad, false), null, bad);
  }
  t.equal(parseTimestamp('2024-02-29T00:00:00Z', true), Date.parse('2024-02-29T00:00:00Z'), 'leap day');
});

t.test('S3 credentials: good answer, extra fields ignored', async (t) => {
  const c = parseS3Credentials({ ...good, extra: 1, AccountId: 'x' }, NOW);
  t.same(c, {
    accessKeyId: good.accessKeyId,
    secretAccessKey: good.secretAccessKey,
    sessionToken: good.sessionToken,
    expiresAt: Date.parse('2025-02-18T16:57:23Z'),
    issuedAt: NOW,
  });
});

t.test('S3 credentials: anything else is InvalidAnswer, never a partial credential', async (t) => {
  const bad: unknown[] = [
    null,
    'x',
    [],
    {},
    { ...good, accessKeyId: '' },
    { ...good, secretAccessKey: undefined },
    { ...good, sessionToken: 42 },
    { ...good, sessionToken: 'has space' },
    { ...good, accessKeyId: 'line\nbreak' },
    { ...good, expiration: undefined },
    { ...good, expiration: 1739897843 },
    { ...good, expiration: '2025-02-18T16:57:23' },
    { ...good, expiration: 'tomorrow' },
    { ...good, expiration: '2025-02-18T16:00:00Z' },
    { ...good, expiration: '2025-02-18T15:00:00Z' },
    { AccessKeyId: 'A', SecretAccessKey: 'B', Token: 'C', Expiration: good.expiration },
  ];
  for (const body of bad) {
    t.throws(() => parseS3Credentials(body, NOW), InvalidAnswer, JSON.stringify(body));
  }
  t.throws(
    () => parseS3Credentials({ ...good, sessionToken: 'has space' }, NOW),
    {
      message: /not as documented \(\/sessionToken expected printable ASCII without spaces\)$/,
    },
    'says where the problem is and what was expected',
  );
  t.throws(() => parseS3Credentials({ ...good, expiration: undefined }, NOW), {
    message: /\(\/expiration expected a string\)$/,
  });
  t.throws(() => parseS3Credentials({ secretAccessKey: 'x' }, NOW), { message: /\(\/accessKeyId is missing\)$/ });
  t.throws(() => parseS3Credentials('x', NOW), { message: /\(\(top level\) expected an object\)$/ });
  const badKey = t.throws(() => parseS3Credentials({ ...good, accessKeyId: 'bad key' }, NOW), {
    message: /accessKeyId/,
  });
  t.ok(badKey instanceof Error, 'refused');
  t.notMatch(badKey instanceof Error ? badKey.message : '', /bad key/, 'the offending value is not echoed');
});

t.test('token records', async (t) => {
  const r = parseTokenRecord({
    id: 42,
    user_id: 7,
    workspace: 'alpha',
    name: 'n',
    scope: 'offline_access',
    created: '2025-01-01T00:00:00Z',
    expiry: '2025-01-31T00:00:00.000000Z',
    token: 'ignored-here',
    other: true,
  });
  t.same(r, {
    id: '42',
    name: 'n',
    scope: 'offline_access',
    workspace: 'alpha',
    userId: '7',
    createdAt: Date.parse('2025-01-01T00:00:00Z'),
    expiresAt: Date.parse('2025-01-31T00:00:00Z'),
  });
  t.same(parseTokenRecord({ id: 'abc' }), {
    id: 'abc',
    name: null,
    scope: null,
    workspace: null,
    userId: null,
    createdAt: null,
    expiresAt: null,
  });
  t.same(parseTokenRecord({ id: 'abc', expiry: null }).expiresAt, null);
  for (const body of [
    {},
    { id: '' },
    { id: 1.5 },
    { id: -1 },
    { id: true },
    { id: 'a', expiry: 'soon' },
    { id: 'a', created: 5 },
    { id: 'a', name: 3 },
  ]) {
    t.throws(() => parseTokenRecord(body), InvalidAnswer, JSON.stringify(body));
  }
  t.same(
    parseTokenList([{ id: 'a' }, { id: 2 }]).map((x) => x.id),
    ['a', '2'],
  );
  t.same(parseTokenList([]), []);
  t.throws(() => parseTokenList({ tokens: [] }), InvalidAnswer);
  t.throws(
    () => parseTokenList([{ id: 'a' }, { name: 'no id' }]),
    /^token record 1 is not as documented \(\/id is missing\)$/,
  );
  t.throws(() => parseTokenRecord({ id: -1 }), /\(\/id expected a non-negative whole number\)$/);
  t.throws(() => parseTokenRecord({ id: 'a', name: 3 }), /\(\/name expected a string or null\)$/);
  t.same(parseCreatedToken({ id: 'a', token: 'k3y' }).token, 'k3y');
  t.throws(() => parseCreatedToken({ id: 'a' }), /no usable API key/);
  t.throws(() => parseCreatedToken({ id: 'a', token: '' }), /no usable API key/);
});

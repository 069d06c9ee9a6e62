import t from 'tap';
import type { S3Credentials } from '../../src/core/types.js';
import { AuditTrail } from '../../src/server/audit.js';
import { memoryLogger } from './fixtures/memory-logger.js';

const creds = (n: number): S3Credentials => ({
  accessKeyId: `ASIAEXAMPLE000${n}WXYZ${n}`,
  secretAccessKey: `secret-access-key-${n}`,
  sessionToken: `session-token-${n}`,
  issuedAt: Date.UTC(2026, 0, 1),
  expiresAt: Date.UTC(2026, 0, 1, 1) + n * 1000,
});

t.test('one line per credential per client, with what an auditor needs and no secret', async (t) => {
  const { logger, lines, text } = memoryLogger('info');
  const audit = new AuditTrail(logger);
  for (let i = 0; i < 50; i++) audit.handedOut('alpha', 'ct-1', '127.0.0.1', creds(1));
  t.equal(lines().length, 1, '50 polls of the same credential: one line');
  t.match(lines()[0], {
    audit: true,
    workspace: 'alpha',
    clientTokenId: 'ct-1',
    remote: '127.0.0.1',
    accessKeyIdEnd: 'XYZ1',
    expiresAt: '2026-01-01T01:00:01Z',
  });
  t.notOk('accessKeyId' in lines()[0]!, 'not the whole access key id');
  audit.handedOut('alpha', 'ct-1', '127.0.0.1', creds(2));
  t.equal(lines().length, 2, 'a renewed credential: a new line');
  audit.handedOut('alpha', 'ct-2', '127.0.0.1', creds(2));
  t.equal(lines().length, 3, 'another client (after a token rotation): a new line');
  audit.handedOut('alpha', 'ct-2', '127.0.0.2', creds(2));
  t.equal(lines().length, 4, 'another source address: a new line');
  audit.handedOut('beta', 'ct-2', '127.0.0.2', creds(2));
  t.equal(lines().length, 5, 'another workspace: a new line');
  audit.handedOut('alpha', 'ct-1', '127.0.0.1', creds(1));
  t.equal(lines().length, 5, 'the first again: still remembered');
  for (const secret of ['secret-access-key', 'session-token']) t.notMatch(text(), secret);
  for (const line of lines()) t.equal(String(line.accessKeyIdEnd).length, 4);
});

t.test('a kept-alive connection: its repeats are known at once, a change is still logged', async (t) => {
  const { logger, lines } = memoryLogger('info');
  const audit = new AuditTrail(logger);
  const connection = {};
  const first = creds(1);
  for (let i = 0; i < 5; i++) audit.handedOut('alpha', 'ct-1', '127.0.0.1', first, 1001, connection);
  t.equal(lines().length, 1, 'five polls on one connection: one line');
  audit.handedOut('alpha', 'ct-1', '127.0.0.1', creds(2), 1001, connection);
  t.equal(lines().length, 2, 'a renewed credential on the same connection: a new line');
  audit.handedOut('alpha', 'ct-2', '127.0.0.1', creds(2), 1001, connection);
  t.equal(lines().length, 3, 'another token on the same connection: a new line');
  audit.handedOut('alpha', 'ct-1', '127.0.0.1', first, 1001, {});
  t.equal(lines().length, 3, 'a new connection with what was logged before: remembered all the same');
});

t.test('API keys handed out: once per key per client, never the key', async (t) => {
  const { logger, lines, text } = memoryLogger('info');
  const audit = new AuditTrail(logger);
  audit.apiKeyHandedOut('alpha', 'ct-1', '127.0.0.1', 'tok-1');
  audit.apiKeyHandedOut('alpha', 'ct-1', '127.0.0.1', 'tok-1');
  t.equal(lines().length, 1);
  t.match(lines()[0], { audit: true, workspace: 'alpha', clientTokenId: 'ct-1', tokenId: 'tok-1' });
  audit.apiKeyHandedOut('alpha', 'ct-1', '127.0.0.1', 'tok-2');
  t.equal(lines().length, 2, 'a rotated key: a new line');
  t.notMatch(text(), /"key"/);
});

t.test('users sharing a workspace token (#12): a line per user, with the uid', async (t) => {
  const { logger, lines } = memoryLogger('info');
  const audit = new AuditTrail(logger);
  audit.handedOut('alpha', 'ct-1', '127.0.0.1', creds(1), 1001);
  audit.handedOut('alpha', 'ct-1', '127.0.0.1', creds(1), 1001);
  audit.handedOut('alpha', 'ct-1', '127.0.0.1', creds(1), 1002);
  audit.apiKeyHandedOut('alpha', 'ct-1', '127.0.0.1', 'tok-1', 1001);
  audit.apiKeyHandedOut('alpha', 'ct-1', '127.0.0.1', 'tok-1', 1002);
  t.same(
    lines().map((l) => [l.msg, l.uid]),
    [
      ['S3 credential handed out', 1001],
      ['S3 credential handed out', 1002],
      ['API key handed out', 1001],
      ['API key handed out', 1002],
    ],
  );
});

t.test('memory stays bounded: past the limit it forgets and logs again', async (t) => {
  const { logger, lines } = memoryLogger('info');
  const audit = new AuditTrail(logger);
  for (let i = 0; i < 10_000; i++) audit.handedOut('alpha', `ct-${i}`, '127.0.0.1', creds(1));
  t.equal(lines().length, 10_000);
  audit.handedOut('alpha', 'ct-0', '127.0.0.1', creds(1));
  t.equal(lines().length, 10_000, 'still remembered at the limit');
  audit.handedOut('alpha', 'ct-new', '127.0.0.1', creds(1));
  t.equal(lines().length, 10_001);
  audit.handedOut('alpha', 'ct-0', '127.0.0.1', creds(1));
  t.equal(lines().length, 10_002, 'forgotten after the reset: logged once more, never lost');
});

/**
 * The logger's redaction: every field and header name that carries a secret anywhere in
 * eodh-credd is censored, in the shapes the code logs them (top level, one and two levels down,
 * header objects, errors). The real-run counterpart, grepping a trace-level daemon's output for
 * every secret used, is secrets.test.ts.
 */
import t from 'tap';
import { REDACT_PATHS } from '../../src/log.js';
import { memoryLogger } from '../server/fixtures/memory-logger.js';

const SECRET = 'S3CR3T-VALUE-that-must-never-appear';

const capture = () => memoryLogger('trace');

const secretFields = [
  'apiKey',
  'key',
  'token',
  'secretAccessKey',
  'sessionToken',
  'SecretAccessKey',
  'Token',
  'SessionToken',
  'masterKey',
  'clientToken',
  'adminToken',
  'authorization',
  'Authorization',
];

t.test('secret fields at the top level and one level down', async (t) => {
  for (const field of secretFields) {
    const { logger, text } = capture();
    logger.info({ [field]: SECRET }, 'top');
    logger.info({ creds: { [field]: SECRET } }, 'nested');
    t.notMatch(text(), SECRET, `${field}`);
    t.match(text(), '[redacted]', `${field}: the censor shows where`);
  }
});

t.test('two levels down, for the credential and token fields', async (t) => {
  for (const field of [
    'apiKey',
    'token',
    'secretAccessKey',
    'sessionToken',
    'SecretAccessKey',
    'Token',
    'SessionToken',
    'authorization',
  ]) {
    const { logger, text } = capture();
    logger.info({ slot: { current: { [field]: SECRET } } }, 'deep');
    t.notMatch(text(), SECRET, field);
  }
});

t.test('headers, wherever a headers object is logged', async (t) => {
  const headerSets = [
    { authorization: SECRET },
    { Authorization: `Bearer ${SECRET}` },
    { cookie: SECRET },
    { 'x-amz-security-token': SECRET },
  ];
  for (const headers of headerSets) {
    const { logger, text } = capture();
    logger.info({ headers }, 'bare');
    logger.info({ req: { headers: { ...headers, 'proxy-authorization': SECRET } } }, 'request');
    logger.info({ request: { headers } }, 'fetch options');
    logger.info({ err: { headers } }, 'an error carrying them');
    t.notMatch(text(), SECRET, Object.keys(headers)[0]!);
  }
});

t.test('errors: raw request bytes from the HTTP parser, and secret properties', async (t) => {
  const { logger, text } = capture();
  const parseError = Object.assign(new Error('Parse Error: Header overflow'), {
    code: 'HPE_HEADER_OVERFLOW',
    rawPacket: Buffer.from(`GET / HTTP/1.1\r\nAuthorization: ${SECRET}\r\n`),
  });
  logger.debug({ err: parseError }, 'client error');
  const hubError = Object.assign(new Error('hub said no'), { token: SECRET, apiKey: SECRET });
  logger.error({ err: hubError }, 'renewal failed');
  t.notMatch(text(), SECRET);
  t.notMatch(text(), Buffer.from(SECRET).toJSON().data.join(','), 'not even as a byte array');
  t.match(text(), 'HPE_HEADER_OVERFLOW', 'the useful part stays');
});

t.test('what is not a secret stays readable', async (t) => {
  const { logger, text } = capture();
  logger.info(
    {
      workspace: 'alpha',
      clientTokenId: 'ct-1234abcd',
      accessKeyIdEnd: 'WXYZ',
      tokenId: 'tok-1',
      expiresAt: '2026-01-01T00:00:00Z',
    },
    'audit',
  );
  for (const value of ['alpha', 'ct-1234abcd', 'WXYZ', 'tok-1', '2026-01-01T00:00:00Z']) t.match(text(), value);
});

t.test('the path list has no duplicates and every entry parses', async (t) => {
  t.equal(new Set(REDACT_PATHS).size, REDACT_PATHS.length);
  t.doesNotThrow(() => capture(), 'pino accepts every path');
});

/**
 * The logger. JSON lines to stdout (journald keeps them) unless stdout is a terminal, where a
 * human reads them. Redaction is set once, here, with explicit paths: every header and field name
 * that carries a secret anywhere in eodh-credd. Modules take `logger.child({ module })`.
 *
 * pino-pretty is loaded only when the human format is chosen: the daemon under systemd writes JSON
 * and does not pay for it at start-up.
 */
import { createRequire } from 'node:module';
import { type DestinationStream, type Logger, pino } from 'pino';
import type PinoPretty from 'pino-pretty';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  '*.authorization',
  'apiKey',
  '*.apiKey',
  'key',
  '*.key',
  'token',
  '*.token',
  'secretAccessKey',
  '*.secretAccessKey',
  'sessionToken',
  '*.sessionToken',
  'SecretAccessKey',
  '*.SecretAccessKey',
  'Token',
  '*.Token',
  'SessionToken',
  '*.SessionToken',
  'masterKey',
  '*.masterKey',
  'clientToken',
  '*.clientToken',
  'adminToken',
  '*.adminToken',
  // Headers, wherever a headers object is logged (requests, fetch options, errors that carry them).
  'req.headers["proxy-authorization"]',
  'req.headers["x-amz-security-token"]',
  'headers.cookie',
  'headers.Authorization',
  'headers["x-amz-security-token"]',
  '*.headers.authorization',
  '*.headers.Authorization',
  '*.headers.cookie',
  '*.headers["x-amz-security-token"]',
  'Authorization',
  '*.Authorization',
  // Node's HTTP parser attaches the raw request bytes (Authorization included) to client errors.
  'rawPacket',
  '*.rawPacket',
  // One level deeper for the secret fields, e.g. { slot: { current: { secretAccessKey } } }.
  '*.*.apiKey',
  '*.*.token',
  '*.*.secretAccessKey',
  '*.*.sessionToken',
  '*.*.SecretAccessKey',
  '*.*.Token',
  '*.*.SessionToken',
  '*.*.authorization',
];

export interface LogOptions {
  readonly level: string;
  readonly format: 'auto' | 'json' | 'pretty';
  readonly destination?: DestinationStream | undefined;
}

export function createLogger(options: LogOptions): Logger {
  const base = {
    level: options.level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { name: 'eodh-credd' },
  };
  if (options.destination) return pino(base, options.destination);
  const human = options.format === 'pretty' || (options.format === 'auto' && process.stdout.isTTY === true);
  if (human) {
    // CommonJS, so require() keeps createLogger synchronous.
    const pretty: typeof PinoPretty = createRequire(import.meta.url)('pino-pretty');
    return pino(base, pretty({ colorize: true, sync: true, ignore: 'pid,hostname,name' }));
  }
  return pino(base, pino.destination({ dest: 1, sync: false }));
}

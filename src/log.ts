/**
 * The logger. JSON lines to stdout (journald keeps them) unless stdout is a terminal, where a
 * human reads them. Redaction is set once, here, with explicit paths: every header and field name
 * that carries a secret anywhere in eodh-credd. Modules take `logger.child({ module })`.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

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
];

export interface LogOptions {
  readonly level: string;
  readonly format: 'auto' | 'json' | 'pretty';
  readonly destination?: DestinationStream | undefined;
}

export function createLogger(options: LogOptions): Logger {
  const base = { level: options.level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { name: 'eodh-credd' } };
  if (options.destination) return pino(base, options.destination);
  const human = options.format === 'pretty' || (options.format === 'auto' && process.stdout.isTTY === true);
  if (human) return pino(base, pretty({ colorize: true, sync: true, ignore: 'pid,hostname,name' }));
  return pino(base, pino.destination({ dest: 1, sync: false }));
}

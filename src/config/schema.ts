/**
 * The configuration file's schema: every key, its type, bounds and default. Unknown keys are
 * errors, so a typo never silently falls back to a default. Each check's message says what the
 * key accepts ("expected a whole number from 0 to 65535"); load.ts adds the file, the key and the value.
 */
import * as v from 'valibot';
import { defaultPort } from './ports.js';

/** A [section]: every key optional, unknown keys are errors, a missing section is all defaults. */
function table<const E extends v.ObjectEntries>(entries: E) {
  const schema = v.strictObject(entries, 'expected a table');
  return v.optional(schema, {} as v.InferInput<typeof schema>);
}

/** A number in [min, max]; a whole number unless `whole` is false. A function default is computed at each parse. */
function ranged(min: number, max: number, dflt: number | (() => number), whole = true) {
  const expected = `expected ${whole ? 'a whole number' : 'a number'} from ${min} to ${max}`;
  return v.optional(
    v.pipe(
      v.number(expected),
      v.check((n) => !whole || Number.isInteger(n), expected),
      v.minValue(min, expected),
      v.maxValue(max, expected),
    ),
    dflt,
  );
}

const text = (dflt: string) => v.optional(v.string('expected a string'), dflt);
const nonEmpty = (dflt: string) =>
  v.optional(v.pipe(v.string('expected a non-empty string'), v.minLength(1, 'expected a non-empty string')), dflt);
const flag = (dflt: boolean) => v.optional(v.boolean('expected true or false'), dflt);
const oneOf = <const T extends readonly string[]>(options: T, dflt: T[number]) =>
  v.optional(v.picklist(options, `expected one of ${options.map((o) => JSON.stringify(o)).join(', ')}`), dflt);

/** Whether a URL may carry credentials: https, or plain http to this machine's loopback only (#12). */
export function isSafeEndpoint(text: string): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  if (url.protocol === 'https:') return true;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return url.protocol === 'http:' && (host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host));
}

const endpoint = v.optional(
  v.pipe(
    v.string('expected a string'),
    v.check(
      (s) => s === '' || isSafeEndpoint(s),
      'expected an https:// URL (plain http:// only to a loopback address), or "" for AWS',
    ),
  ),
  '',
);

export const ConfigSchema = v.strictObject(
  {
    server: table({
      host: nonEmpty('127.0.0.1'), // address to listen on
      port: ranged(0, 65535, () => defaultPort()), // TCP port; 0 picks a free one; default by uid (ports.ts)
      allow_non_loopback: flag(false), // permit a non-loopback host
    }),
    storage: table({
      data_dir: text(''), // directory for the database, keys and tokens
    }),
    renewal: table({
      sweep_schedule: nonEmpty('* * * * *'), // node-cron expression: the safety-net sweep (#13)
      request_wait_ms: ranged(0, 5_000, 700), // how long a request waits for a renewal
      backoff_initial_ms: ranged(10, 3_600_000, 5_000), // first retry delay after a failure
      backoff_max_ms: ranged(10, 86_400_000, 300_000), // longest retry delay
    }),
    rotation: table({
      enabled: flag(true), // rotate API keys before they expire
      rotate_before_days: ranged(0, 29, 7, false), // rotate this long before expiry
      key_lifetime_days: ranged(1, 30, 30), // lifetime of minted keys (the hub caps it at 30)
    }),
    hub: table({
      timeout_ms: ranged(100, 120_000, 10_000), // per-request timeout
      retries: ranged(0, 10, 2), // retries on network errors, 5xx and 429
      late_answer_margin_ms: ranged(0, 3_600_000, 120_000), // how long after a timed-out mint the hub may still create the key
    }),
    sts: table({
      verify: flag(true), // call GetCallerIdentity to learn AccountId
      endpoint, // STS endpoint URL (https, or http to loopback); empty for AWS
      region: nonEmpty('eu-west-2'),
      timeout_ms: ranged(100, 60_000, 3_000), // GetCallerIdentity timeout
    }),
    client_tokens: table({
      // after `client-token rotate`, how long the previous token still works (0: not at all)
      grace_seconds: ranged(0, 7 * 86_400, 900),
    }),
    log: table({
      level: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
      format: oneOf(['auto', 'json', 'pretty'], 'auto'),
    }),
  },
  'expected a table',
);

export type ConfigFile = v.InferOutput<typeof ConfigSchema>;

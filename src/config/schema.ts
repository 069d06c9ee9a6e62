/**
 * The configuration file's schema: every key, its type, bounds and default. Unknown keys are
 * errors, so a typo never silently falls back to a default.
 */
import { Type, type Static } from '@sinclair/typebox';

const Int = (minimum: number, maximum: number, dflt: number, description: string) =>
  Type.Integer({ minimum, maximum, default: dflt, description });

export const ConfigSchema = Type.Object(
  {
    server: Type.Object(
      {
        host: Type.String({ default: '127.0.0.1', minLength: 1, description: 'address to listen on' }),
        port: Int(0, 65535, 9460, 'TCP port; 0 picks a free one'),
        allow_non_loopback: Type.Boolean({ default: false, description: 'permit a non-loopback host' }),
      },
      { additionalProperties: false, default: {} },
    ),
    storage: Type.Object(
      {
        data_dir: Type.String({ default: '', description: 'directory for the database, keys and tokens' }),
      },
      { additionalProperties: false, default: {} },
    ),
    renewal: Type.Object(
      {
        sweep_schedule: Type.String({ default: '*/10 * * * * *', minLength: 1, description: 'node-cron expression' }),
        request_wait_ms: Int(0, 5_000, 700, 'how long a request waits for a renewal'),
        backoff_initial_ms: Int(10, 3_600_000, 5_000, 'first retry delay after a failure'),
        backoff_max_ms: Int(10, 86_400_000, 300_000, 'longest retry delay'),
      },
      { additionalProperties: false, default: {} },
    ),
    rotation: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'rotate API keys before they expire' }),
        rotate_before_days: Type.Number({ minimum: 0, maximum: 29, default: 7, description: 'rotate this long before expiry' }),
        key_lifetime_days: Int(1, 30, 30, 'lifetime of minted keys (the hub caps it at 30)'),
      },
      { additionalProperties: false, default: {} },
    ),
    hub: Type.Object(
      {
        timeout_ms: Int(100, 120_000, 10_000, 'per-request timeout'),
        retries: Int(0, 10, 2, 'retries on network errors, 5xx and 429'),
      },
      { additionalProperties: false, default: {} },
    ),
    sts: Type.Object(
      {
        verify: Type.Boolean({ default: true, description: 'call GetCallerIdentity to learn AccountId' }),
        endpoint: Type.String({ default: '', description: 'STS endpoint URL; empty for AWS' }),
        region: Type.String({ default: 'eu-west-2', minLength: 1 }),
        timeout_ms: Int(100, 60_000, 3_000, 'GetCallerIdentity timeout'),
      },
      { additionalProperties: false, default: {} },
    ),
    log: Type.Object(
      {
        level: Type.Union(
          ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
          { default: 'info' },
        ),
        format: Type.Union([Type.Literal('auto'), Type.Literal('json'), Type.Literal('pretty')], { default: 'auto' }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type ConfigFile = Static<typeof ConfigSchema>;

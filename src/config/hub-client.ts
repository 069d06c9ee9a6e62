/** The hub client's settings from the configuration: one mapping for the daemon and `workspace add`. */
import type { HubDateSample } from '../core/clock-sense.js';
import type { Clock, Random } from '../core/types.js';
import type { HubClientOptions } from '../upstream/client.js';
import type { Config } from './load.js';

/** Backoff between the attempts of one hub call (the broker's own backoff spans calls). */
const ATTEMPT_BACKOFF = { initialMs: 500, maxMs: 5_000 } as const;

export function hubClientOptions(
  config: Config,
  extra: {
    readonly random?: Random;
    readonly signal?: AbortSignal;
    /** Our clock, and where the Date of each answer goes (the hub clock estimate, #13). */
    readonly clock?: Clock;
    readonly onDate?: (sample: HubDateSample) => void;
  } = {},
): HubClientOptions {
  return {
    timeoutMs: config.hub.timeout_ms,
    retries: config.hub.retries,
    backoff: ATTEMPT_BACKOFF,
    ...(extra.random ? { random: extra.random } : {}),
    ...(extra.signal ? { signal: extra.signal } : {}),
    ...(extra.clock ? { clock: extra.clock } : {}),
    ...(extra.onDate ? { onDate: extra.onDate } : {}),
  };
}

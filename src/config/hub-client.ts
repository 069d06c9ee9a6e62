/** The hub client's settings from the configuration: one mapping for the daemon and `workspace add`. */
import type { Random } from '../core/types.js';
import type { HubClientOptions } from '../upstream/client.js';
import type { Config } from './load.js';

/** Backoff between the attempts of one hub call (the broker's own backoff spans calls). */
const ATTEMPT_BACKOFF = { initialMs: 500, maxMs: 5_000 } as const;

export function hubClientOptions(
  config: Config,
  extra: { readonly random?: Random; readonly signal?: AbortSignal } = {},
): HubClientOptions {
  return {
    timeoutMs: config.hub.timeout_ms,
    retries: config.hub.retries,
    backoff: ATTEMPT_BACKOFF,
    ...(extra.random ? { random: extra.random } : {}),
    ...(extra.signal ? { signal: extra.signal } : {}),
  };
}

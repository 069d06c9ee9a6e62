/**
 * When to renew, when to stop serving, how long to back off. Pure functions of the credential,
 * the time and an injected random source: no timers, no I/O.
 *
 * The numbers come from what the AWS clients do (see container-credentials notes):
 * - botocore refreshes at 15 min left (advisory) and 10 min (mandatory); a credential served with
 *   less than 15 min left makes every botocore call come back to us. So while the hub answers we
 *   keep a credential with at least FRESH_MARGIN left.
 * - JS v3 treats a credential as expired at 5 min left, Go v2 likewise; serving one with under a
 *   minute left helps nobody, so below SAFETY_MARGIN we answer 503 instead.
 * Margins scale with the lifetime (hubs may hand out minutes, not an hour), capped at the values
 * above for the usual one-hour credential.
 */
import type { Random, S3Credentials } from './types.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Longer than the hub's one-hour S3 credentials could plausibly be (#12). */
const IMPLAUSIBLE_LIFETIME = 12 * HOUR;

/**
 * How long the credential lived when we received it, as renewal sees it. A lifetime over 12 h is
 * not what the hub issues (a garbled answer, a wrong clock, a hostile hub): such a credential is
 * renewed as if it had one hour, so a credential is never held for half a day or more.
 */
export function lifetimeOf(c: Pick<S3Credentials, 'issuedAt' | 'expiresAt'>): number {
  const lifetime = Math.max(0, c.expiresAt - c.issuedAt);
  return lifetime > IMPLAUSIBLE_LIFETIME ? HOUR : lifetime;
}

/** Below this much time left a credential is not served: min(60 s, 10 % of its lifetime). */
export function safetyMargin(lifetimeMs: number): number {
  return Math.min(MINUTE, lifetimeMs * 0.1);
}

/** A served credential should have at least this left: min(15 min, 25 % of its lifetime). */
export function freshMargin(lifetimeMs: number): number {
  return Math.min(15 * MINUTE, lifetimeMs * 0.25);
}

/** Whether a credential may be handed to a client at all. */
export function isServable(c: Pick<S3Credentials, 'issuedAt' | 'expiresAt'>, now: number): boolean {
  return c.expiresAt - now > safetyMargin(lifetimeOf(c));
}

/**
 * The moment to start renewing: half the lifetime, ±10 % jitter so that many workspaces (or many
 * daemons behind one hub) do not renew in lock step. For a one-hour credential that is between
 * 27 and 33 min before expiry, comfortably ahead of botocore's 15-min advisory window, leaving
 * room for several failed attempts before the fresh margin is reached.
 */
export function renewalPoint(c: Pick<S3Credentials, 'issuedAt' | 'expiresAt'>, random: Random): number {
  const jitter = 1 + (random() * 0.2 - 0.1);
  return c.issuedAt + Math.round(lifetimeOf(c) * 0.5 * jitter);
}

/** A credential needs renewing once its renewal point is reached or it is inside the fresh margin. */
export function isDueForRenewal(
  c: Pick<S3Credentials, 'issuedAt' | 'expiresAt'>,
  renewAt: number,
  now: number,
): boolean {
  return now >= renewAt || c.expiresAt - now < freshMargin(lifetimeOf(c));
}

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 5_000, maxMs: 5 * MINUTE };

/**
 * Delay before retry number `failures` (1 = after the first failure): exponential with "equal
 * jitter" (half fixed, half random) so retries spread out but never collapse to zero.
 * When a credential is still held, the delay is capped at half of what it has left before the
 * safety margin, so a long backoff never sleeps through the last chances to renew (Vault Agent's
 * lifetime watcher caps its backoff by the remaining lease for the same reason).
 */
export function backoffDelay(
  failures: number,
  options: BackoffOptions,
  random: Random,
  current?: Pick<S3Credentials, 'issuedAt' | 'expiresAt'> | null,
  now?: number,
): number {
  const exponent = Math.max(0, failures - 1);
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(exponent, 30));
  let delay = ceiling / 2 + random() * (ceiling / 2);
  if (current && now !== undefined) {
    const usable = current.expiresAt - now - safetyMargin(lifetimeOf(current));
    if (usable > 0) delay = Math.min(delay, Math.max(usable / 2, Math.min(1_000, options.initialMs)));
  }
  return Math.round(delay);
}

/** Without a known expiry, a key is assumed to need rotating one day after we stored it. */
export const UNKNOWN_EXPIRY_GRACE_MS = DAY;

/** When rotation of an API key becomes due. */
export function rotationDueAt(key: { expiresAt: number | null; storedAt: number }, rotateBeforeMs: number): number {
  if (key.expiresAt === null) return key.storedAt + UNKNOWN_EXPIRY_GRACE_MS;
  return key.expiresAt - rotateBeforeMs;
}

/** Whole days left before an expiry, rounded down; negative once past. */
export function daysLeft(expiresAt: number, now: number): number {
  return Math.floor((expiresAt - now) / DAY);
}

export const durations = { MINUTE, HOUR, DAY } as const;

// ---- recovery and load spreading (#13) ---------------------------------------------------------

/** While a workspace holds nothing servable (clients get 503), retries are never further apart than this. */
export const REFUSING_BACKOFF_CAP_MS = 30_000;

/**
 * A client request for a workspace with nothing servable starts a hub call at once, unless one
 * started for it this recently: all the clients waiting on a workspace share one call every few
 * seconds, however many they are and however often they ask.
 */
export const REQUEST_RETRY_INTERVAL_MS = 2_000;

/** The longest Retry-After honoured: a hub asking for more is still asked again after this. */
export const RETRY_AFTER_CAP_MS = 10 * MINUTE;

export interface FailurePlan {
  /** Consecutive failures, this one included. */
  readonly failures: number;
  readonly now: number;
  readonly backoff: BackoffOptions;
  readonly random: Random;
  /** The credential still held, if any. */
  readonly held?: Pick<S3Credentials, 'issuedAt' | 'expiresAt'> | null | undefined;
  /** What the hub asked for with Retry-After, in ms; it sets the next attempt. */
  readonly retryAfterMs?: number | undefined;
  /** The hub refused the API key: asking again soon does not help, the usual backoff applies. */
  readonly keyRejected?: boolean | undefined;
}

/**
 * When to try again after a failed renewal.
 * - Never before the hub's Retry-After, when it sent one (capped at 10 min), plus up to 10 % (at
 *   most 5 s) so that workspaces told the same HTTP-date do not all return in one second.
 * - Nor before the exponential backoff, capped by what the held credential has left, and at 30 s
 *   once nothing servable is held, so a hub that comes back is noticed within seconds (not when
 *   the hub refused the key: a new key is needed, and asking every 30 s only adds load).
 */
export function nextAttemptAt(plan: FailurePlan): number {
  const { failures, now, backoff, random, held } = plan;
  const refusing = !held || !isServable(held, now);
  const options =
    refusing && !plan.keyRejected ? { ...backoff, maxMs: Math.min(backoff.maxMs, REFUSING_BACKOFF_CAP_MS) } : backoff;
  const delay = backoffDelay(failures, options, random, refusing ? null : held, now);
  if (plan.retryAfterMs === undefined || plan.retryAfterMs <= 0) return now + delay;
  const asked = Math.min(plan.retryAfterMs, RETRY_AFTER_CAP_MS);
  return now + Math.max(delay, asked + Math.round(random() * Math.min(asked * 0.1, 5_000)));
}

/** Whether a client request may start a hub call for a workspace that has nothing servable. */
export function mayStartOnRequest(state: { lastAttemptAt: number; hubRetryAt: number }, now: number): boolean {
  // A clock that jumped backwards must not stall requests for as long as it jumped.
  const sinceLast = now - state.lastAttemptAt;
  const recent = sinceLast >= 0 && sinceLast < REQUEST_RETRY_INTERVAL_MS;
  return now >= state.hubRetryAt && !recent;
}

/** Background calls to one hub may start at up to this many times the rate its workspaces need on average. */
const PACE_HEADROOM = 2;
/** However few the workspaces, this many background calls to one hub may start in any second. */
const MIN_CALLS_PER_SECOND = 4;

/**
 * How many background calls to one hub may start in any one second, given the lifetimes of the
 * credentials of its workspaces. A workspace renews once per half lifetime on average; the hub may
 * get twice the sum of those rates, so a cold start or the end of an outage (every workspace due at
 * once) drains at twice the steady rate instead of all in one second. A lifetime not yet known
 * counts as the hub's usual hour.
 */
export function backgroundCallsPerSecond(lifetimesMs: readonly number[]): number {
  let perSecond = 0;
  for (const lifetime of lifetimesMs) perSecond += 2000 / Math.max(1000, lifetime > 0 ? lifetime : HOUR);
  return Math.max(MIN_CALLS_PER_SECOND, Math.ceil(PACE_HEADROOM * perSecond - 1e-9));
}

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

import t from 'tap';
import {
  backgroundCallsPerSecond,
  backoffDelay,
  durations,
  freshMargin,
  isDueForRenewal,
  isServable,
  lifetimeOf,
  mayStartOnRequest,
  nextAttemptAt,
  REFUSING_BACKOFF_CAP_MS,
  REQUEST_RETRY_INTERVAL_MS,
  RETRY_AFTER_CAP_MS,
  renewalPoint,
  rotationDueAt,
  safetyMargin,
} from '../../src/core/policy.js';

const { MINUTE, HOUR, DAY } = durations;
const hourCred = { issuedAt: 0, expiresAt: HOUR };
const fourMinCred = { issuedAt: 0, expiresAt: 4 * MINUTE };

t.test('margins for a one-hour credential match the AWS clients', async (t) => {
  t.equal(lifetimeOf(hourCred), HOUR);
  t.equal(safetyMargin(HOUR), MINUTE, 'stop serving with a minute left');
  t.equal(freshMargin(HOUR), 15 * MINUTE, "botocore's advisory window");
});

t.test('margins scale down for a four-minute credential', async (t) => {
  t.equal(safetyMargin(4 * MINUTE), 24_000);
  t.equal(freshMargin(4 * MINUTE), MINUTE);
  t.ok(safetyMargin(4 * MINUTE) < freshMargin(4 * MINUTE), 'a fresh credential is always servable');
});

t.test('renewal point: half the life, within ±10 %', async (t) => {
  t.equal(
    renewalPoint(hourCred, () => 0),
    Math.round(HOUR * 0.45),
  );
  t.equal(
    renewalPoint(hourCred, () => 0.5),
    HOUR / 2,
  );
  t.equal(
    renewalPoint(hourCred, () => 0.999999),
    Math.round(HOUR * 0.5 * (1 + (0.999999 * 0.2 - 0.1))),
  );
  for (let i = 0; i < 1000; i++) {
    const at = renewalPoint(hourCred, Math.random);
    if (at < HOUR * 0.45 || at > HOUR * 0.55) t.fail(`renewal point ${at} out of bounds`);
  }
  // Renewal starts with at least 27 min left: well before botocore's 15-min window.
  t.ok(HOUR - renewalPoint(hourCred, () => 0.999999) >= 27 * MINUTE);
  const short = renewalPoint(fourMinCred, () => 0.999999);
  t.ok(fourMinCred.expiresAt - short > freshMargin(4 * MINUTE), 'short credential renews before its fresh margin');
});

t.test('due and servable', async (t) => {
  const renewAt = HOUR / 2;
  t.notOk(isDueForRenewal(hourCred, renewAt, renewAt - 1));
  t.ok(isDueForRenewal(hourCred, renewAt, renewAt));
  t.ok(
    isDueForRenewal(hourCred, HOUR, HOUR - 15 * MINUTE + 1),
    'inside the fresh margin even if the renewal point is later',
  );
  t.ok(isServable(hourCred, HOUR - MINUTE - 1));
  t.notOk(isServable(hourCred, HOUR - MINUTE), 'not with a minute or less left');
  t.notOk(isServable(hourCred, HOUR + 1), 'never expired');
});

t.test('backoff: exponential, jittered, capped', async (t) => {
  const opts = { initialMs: 5_000, maxMs: 300_000 };
  t.equal(
    backoffDelay(1, opts, () => 0),
    2_500,
    'equal jitter: at least half',
  );
  t.equal(
    backoffDelay(1, opts, () => 0.999999),
    5_000,
  );
  t.equal(
    backoffDelay(2, opts, () => 0.999999),
    10_000,
  );
  t.equal(
    backoffDelay(4, opts, () => 0.999999),
    40_000,
  );
  t.equal(
    backoffDelay(50, opts, () => 0.999999),
    300_000,
    'capped at max',
  );
  t.equal(
    backoffDelay(50, opts, () => 0),
    150_000,
  );
  for (let n = 1; n < 40; n++) {
    const d = backoffDelay(n, opts, Math.random);
    if (d < 2_500 || d > 300_000) t.fail(`delay ${d} out of bounds at ${n}`);
  }
});

t.test('backoff is capped by what the current credential has left', async (t) => {
  const opts = { initialMs: 5_000, maxMs: 300_000 };
  const now = HOUR - 10 * MINUTE; // 10 min left, 9 usable before the safety margin
  const delay = backoffDelay(20, opts, () => 0.999999, hourCred, now);
  t.equal(delay, (9 * MINUTE) / 2, 'half of the usable time');
  const late = backoffDelay(20, opts, () => 0.999999, hourCred, HOUR - MINUTE - 500);
  t.equal(late, 1_000, 'never below a second while the credential lasts');
  t.equal(
    backoffDelay(20, opts, () => 0.999999, hourCred, HOUR + 5),
    300_000,
    'an expired credential no longer caps',
  );
});

t.test('rotation due date', async (t) => {
  t.equal(rotationDueAt({ expiresAt: 30 * DAY, storedAt: 0 }, 7 * DAY), 23 * DAY);
  t.equal(rotationDueAt({ expiresAt: null, storedAt: 5 }, 7 * DAY), 5 + DAY, 'unknown expiry: within a day');
});

t.test('an implausible lifetime (over 12 h) is renewed as if it had one hour (#12)', async (t) => {
  const dayCred = { issuedAt: 0, expiresAt: 24 * HOUR };
  t.equal(lifetimeOf(dayCred), HOUR);
  t.equal(lifetimeOf({ issuedAt: 0, expiresAt: 12 * HOUR }), 12 * HOUR, '12 h itself is taken as it is');
  t.equal(
    renewalPoint(dayCred, () => 0.5),
    HOUR / 2,
    'renewed after half an hour, not half a day',
  );
  t.notOk(isDueForRenewal(dayCred, HOUR / 2, HOUR / 2 - 1), 'not before that point');
  t.ok(isDueForRenewal(dayCred, HOUR / 2, HOUR / 2), 'due at it');
});

t.test(
  'after a failure: Retry-After sets the next attempt, capped at 10 min; never earlier than the backoff',
  async (t) => {
    const backoff = { initialMs: 5_000, maxMs: 5 * MINUTE };
    const base = { failures: 1, now: 1_000_000, backoff, held: hourCred };
    t.equal(nextAttemptAt({ ...base, random: () => 0, retryAfterMs: 120_000 }), 1_000_000 + 120_000);
    t.equal(nextAttemptAt({ ...base, random: () => 0.999, retryAfterMs: 120_000 }), 1_000_000 + 120_000 + 4_995);
    t.equal(nextAttemptAt({ ...base, random: () => 0, retryAfterMs: 3_600_000 }), 1_000_000 + RETRY_AFTER_CAP_MS);
    t.equal(RETRY_AFTER_CAP_MS, 10 * MINUTE);
    // Retry-After wins over the short backoff even with nothing held.
    t.equal(nextAttemptAt({ ...base, held: null, random: () => 0, retryAfterMs: 120_000 }), 1_000_000 + 120_000);
    // Retry-After: 0 is no instruction: the usual backoff applies.
    t.equal(nextAttemptAt({ ...base, random: () => 0, retryAfterMs: 0 }), 1_000_000 + 2_500);
    // Retry-After: 1 after the fifth failure: the backoff is longer and wins.
    t.equal(nextAttemptAt({ ...base, failures: 5, random: () => 0, retryAfterMs: 1_000 }), 1_000_000 + 40_000);
  },
);

t.test('after a failure with nothing servable, the backoff never exceeds 30 s', async (t) => {
  const backoff = { initialMs: 5_000, maxMs: 5 * MINUTE };
  for (const held of [null, { issuedAt: 0, expiresAt: 30_000 }]) {
    for (let failures = 1; failures <= 40; failures++) {
      for (const r of [0, 0.5, 0.999]) {
        const delay = nextAttemptAt({ failures, now: 29_000, backoff, random: () => r, held }) - 29_000;
        if (delay > REFUSING_BACKOFF_CAP_MS || delay < 0) t.fail(`failure ${failures}: ${delay} ms`);
      }
    }
  }
  const late = nextAttemptAt({ failures: 30, now: 0, backoff, random: () => 0, held: null });
  t.equal(late, REFUSING_BACKOFF_CAP_MS / 2, 'equal jitter under the 30 s cap');
  t.equal(REFUSING_BACKOFF_CAP_MS, 30_000);
});

t.test('after a failure with a servable credential, the backoff grows but stays within what it has left', async (t) => {
  const backoff = { initialMs: 5_000, maxMs: 5 * MINUTE };
  const now = 40 * MINUTE; // 20 min left of an hour: 19 usable before the safety margin
  const delays = [1, 2, 3, 4, 5, 6, 7].map(
    (failures) => nextAttemptAt({ failures, now, backoff, random: () => 0.999, held: hourCred }) - now,
  );
  t.ok(delays[6]! > REFUSING_BACKOFF_CAP_MS, 'may exceed 30 s while clients are served');
  t.ok(
    delays.every((d) => d <= 5 * MINUTE),
    'capped by backoff.maxMs',
  );
  const nearEnd = HOUR - 3 * MINUTE; // 2 min usable
  const d = nextAttemptAt({ failures: 9, now: nearEnd, backoff, random: () => 0.999, held: hourCred }) - nearEnd;
  t.ok(d <= MINUTE, `half of the 2 usable minutes at most (${d})`);
});

t.test('a client request starts a hub call at most every few seconds, and never against Retry-After', async (t) => {
  t.equal(REQUEST_RETRY_INTERVAL_MS, 2_000);
  t.ok(mayStartOnRequest({ lastAttemptAt: 0, hubRetryAt: 0 }, 10_000));
  t.notOk(mayStartOnRequest({ lastAttemptAt: 8_001, hubRetryAt: 0 }, 10_000), 'under 2 s after the last call');
  t.ok(mayStartOnRequest({ lastAttemptAt: 8_000, hubRetryAt: 0 }, 10_000), '2 s after');
  t.notOk(mayStartOnRequest({ lastAttemptAt: 0, hubRetryAt: 60_000 }, 10_000), 'the hub asked to wait');
  t.ok(mayStartOnRequest({ lastAttemptAt: 0, hubRetryAt: 60_000 }, 60_000));
  t.ok(mayStartOnRequest({ lastAttemptAt: 500_000, hubRetryAt: 0 }, 10_000), 'a clock that went back does not stall');
});

t.test('background calls per second: twice the steady rate of the workspaces on one hub, at least 4', async (t) => {
  // 200 workspaces with 120 s credentials renew 200 times a minute: 3.3/s; up to 7 a second.
  t.equal(backgroundCallsPerSecond(Array.from({ length: 200 }, () => 120_000)), 7);
  t.equal(backgroundCallsPerSecond([HOUR]), 4, 'few workspaces: four a second');
  t.equal(backgroundCallsPerSecond([]), 4);
  t.equal(backgroundCallsPerSecond(Array.from({ length: 9_000 }, () => 0)), 10, 'unknown lifetime counts as an hour');
  t.equal(backgroundCallsPerSecond(Array.from({ length: 9_000 }, () => HOUR)), 10);
});

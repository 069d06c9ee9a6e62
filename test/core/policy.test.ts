import t from 'tap';
import {
  backoffDelay,
  durations,
  freshMargin,
  isDueForRenewal,
  isServable,
  lifetimeOf,
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

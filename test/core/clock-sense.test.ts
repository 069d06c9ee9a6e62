import t from 'tap';
import {
  describeOffset,
  HubClockSense,
  localExpiry,
  OFFSET_SHOWN_ABOVE_MS,
  offsetBounds,
  offsetWorthShowing,
} from '../../src/core/clock-sense.js';

const MINUTE = 60_000;
const T = Date.parse('2026-11-01T12:00:00Z');

/** An answer stamped by a hub whose clock is `offset` ahead of ours, sent at T + at, taking rtt ms. */
function answer(offset: number, at = 0, rtt = 40) {
  const sentAt = T + at;
  const stampedAt = sentAt + rtt / 2 + offset;
  return { hubDate: Math.floor(stampedAt / 1000) * 1000, sentAt, receivedAt: sentAt + rtt };
}

t.test('one answer bounds the offset within a second and the round trip', async (t) => {
  for (const offset of [0, 4 * MINUTE, -4 * MINUTE, 1_234, -999]) {
    for (const at of [0, 250, 999]) {
      const b = offsetBounds(answer(offset, at));
      t.ok(b.low <= offset && offset <= b.high, `${offset} in [${b.low}, ${b.high}]`);
      t.ok(b.high - b.low <= 1040);
    }
  }
});

t.test('the estimate is the median of the last five answers; one odd answer does not move it', async (t) => {
  const sense = new HubClockSense();
  t.equal(sense.offsetMs(), null, 'nothing known');
  t.equal(sense.aheadMs(), 0);
  for (let i = 0; i < 4; i++) sense.observe(answer(4 * MINUTE, i * 1_000 + 300));
  sense.observe(answer(-3_600_000, 5_000)); // a stale cached answer
  t.ok(Math.abs(sense.offsetMs()! - 4 * MINUTE) <= 600, `about 4 min (${sense.offsetMs()})`);
  t.ok(sense.aheadMs() <= 4 * MINUTE && sense.aheadMs() >= 4 * MINUTE - 1_100, 'ahead: only what is proven');
  for (let i = 0; i < 5; i++) sense.observe(answer(0, 10_000 + i * 1_000));
  t.ok(Math.abs(sense.offsetMs()!) <= 600, 'the clock was fixed: the old answers age out');
  t.equal(sense.aheadMs(), 0, 'within a second: nothing is proven, nothing is applied');
});

t.test('a hub behind us is never applied to expiry: our own clock is the pessimistic one then', async (t) => {
  const sense = new HubClockSense();
  sense.observe(answer(-4 * MINUTE));
  t.ok(sense.offsetMs()! < -3 * MINUTE);
  t.equal(sense.aheadMs(), 0);
  t.equal(localExpiry(T + 10 * MINUTE, sense.aheadMs()), T + 10 * MINUTE);
  t.equal(localExpiry(T + 10 * MINUTE, 4 * MINUTE), T + 6 * MINUTE, 'a hub ahead: expires earlier on our clock');
});

t.test('unusable samples are ignored', async (t) => {
  const sense = new HubClockSense();
  sense.observe({ hubDate: Number.NaN, sentAt: T, receivedAt: T + 1 });
  sense.observe({ hubDate: T, sentAt: T + 10, receivedAt: T });
  t.equal(sense.offsetMs(), null);
});

t.test('shown above 30 s, in words', async (t) => {
  t.equal(OFFSET_SHOWN_ABOVE_MS, 30_000);
  t.notOk(offsetWorthShowing(null));
  t.notOk(offsetWorthShowing(30_000));
  t.ok(offsetWorthShowing(30_001));
  t.ok(offsetWorthShowing(-45_000));
  t.equal(describeOffset(240_000), "hub clock 4 min 0 s ahead of this machine's");
  t.equal(describeOffset(-45_400), "hub clock 45 s behind this machine's");
});

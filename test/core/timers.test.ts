import t from 'tap';
import { systemTimers } from '../../src/core/timers.js';

// The timers are unref'd (the daemon's server keeps it alive): keep this process alive meanwhile.
const keepAlive = setInterval(() => {}, 60_000);
t.teardown(() => clearInterval(keepAlive));

/** Resolves when a timer armed now for `ms` fires (timers fire in order of their due time). */
const later = (ms: number) => new Promise<void>((resolve) => systemTimers.after(ms, resolve));

t.test('fires once after the delay; cancel stops it', async (t) => {
  const fired = await new Promise<number>((resolve) => {
    const began = Date.now();
    systemTimers.after(5, () => resolve(Date.now() - began));
  });
  t.ok(fired >= 4);
  let called = false;
  const cancel = systemTimers.after(1, () => {
    called = true;
  });
  cancel();
  await later(10);
  t.notOk(called, 'a timer due earlier than one that fired did not fire');
});

t.test('a wait longer than setTimeout allows is chained, not fired at once', async (t) => {
  let called = false;
  const cancel = systemTimers.after(40 * 86_400_000, () => {
    called = true;
  });
  await later(10);
  t.notOk(called, 'Node would fire a 40-day timeout after 1 ms');
  cancel();
});

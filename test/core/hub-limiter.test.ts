import t from 'tap';
import { HubLimiter, LimiterClosed } from '../../src/core/hub-limiter.js';
import { FakeTimers, settableClock } from '../helpers/fake-timers.js';

/** A call that finishes when told to. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

t.test('at most maxInFlight calls run; urgent ones go before queued background ones', async (t) => {
  const c = settableClock(1_000_000);
  const timers = new FakeTimers(c);
  const limiter = new HubLimiter({ maxInFlight: 2, clock: c, timers, perSecond: () => 1_000 });
  const order: string[] = [];
  const gates = new Map<string, ReturnType<typeof gate>>();
  const call = (name: string, priority: 'urgent' | 'background') => {
    const g = gate();
    gates.set(name, g);
    return limiter.run(priority, async () => {
      order.push(name);
      await g.opened;
      return name;
    });
  };
  const all = [call('b1', 'background'), call('b2', 'background'), call('b3', 'background'), call('u1', 'urgent')];
  await timers.advance(0);
  t.same(order, ['b1', 'b2']);
  t.equal(limiter.running, 2);
  t.equal(limiter.queued, 2);
  gates.get('b1')!.open();
  await timers.advance(0);
  t.same(order, ['b1', 'b2', 'u1'], 'the urgent call took the free slot');
  gates.get('b2')!.open();
  gates.get('u1')!.open();
  await timers.advance(0);
  gates.get('b3')!.open();
  t.same(await Promise.all(all), ['b1', 'b2', 'b3', 'u1']);
  t.equal(limiter.running, 0);
});

t.test('at most perSecond background calls start in any one second; urgent ones are not counted', async (t) => {
  const c = settableClock(1_000_000);
  const timers = new FakeTimers(c);
  const limiter = new HubLimiter({ maxInFlight: 4, clock: c, timers, perSecond: () => 3 });
  const starts: Array<[string, number]> = [];
  const background = Array.from({ length: 10 }, (_, i) =>
    limiter.run('background', async () => void starts.push([`b${i}`, c.now() - 1_000_000])),
  );
  await timers.advance(0);
  t.same(starts.length, 3, 'three at once, the rest wait for the window');
  await limiter.run('urgent', async () => void starts.push(['u', c.now() - 1_000_000]));
  t.same(starts.at(-1), ['u', 0], 'urgent: no waiting');
  await timers.advance(10_000);
  await Promise.all(background);
  const times = starts.filter(([n]) => n !== 'u').map(([, at]) => at);
  t.same(times, [0, 0, 0, 1_000, 1_000, 1_000, 2_000, 2_000, 2_000, 3_000]);
  for (let i = 3; i < times.length; i++) {
    if (times[i]! - times[i - 3]! < 1_000) t.fail(`four starts within a second at ${times[i]}`);
  }
});

t.test('the window slides: calls spread out stay unthrottled', async (t) => {
  const c = settableClock(1_000_000);
  const timers = new FakeTimers(c);
  const limiter = new HubLimiter({ maxInFlight: 4, clock: c, timers, perSecond: () => 2 });
  const starts: number[] = [];
  for (let i = 0; i < 6; i++) {
    await limiter.run('background', async () => void starts.push(c.now() - 1_000_000));
    await timers.advance(600);
  }
  t.same(starts, [0, 600, 1_200, 1_800, 2_400, 3_000], 'two per second is never exceeded: no waits');
});

t.test('a clock that jumped backwards does not stall background calls', async (t) => {
  const c = settableClock(1_000_000);
  const timers = new FakeTimers(c);
  const limiter = new HubLimiter({ maxInFlight: 1, clock: c, timers, perSecond: () => 1 });
  await limiter.run('background', async () => {});
  c.set(1_000_000 - 3_600_000);
  let ran = false;
  const p = limiter.run('background', async () => {
    ran = true;
  });
  await timers.advance(0);
  await p;
  t.ok(ran, 'the start "in the future" does not count');
});

t.test('close fails queued calls and refuses new ones; running calls finish; idle waits for them', async (t) => {
  const c = settableClock(1_000_000);
  const timers = new FakeTimers(c);
  const limiter = new HubLimiter({ maxInFlight: 1, clock: c, timers, perSecond: () => 1_000 });
  const g = gate();
  const running = limiter.run('urgent', () => g.opened.then(() => 'done'));
  const queued = limiter.run('background', async () => 'never');
  await timers.advance(0);
  let idle = false;
  void limiter.idle().then(() => {
    idle = true;
  });
  limiter.close();
  await t.rejects(queued, LimiterClosed);
  await t.rejects(
    limiter.run('urgent', async () => 'x'),
    LimiterClosed,
  );
  t.notOk(idle);
  g.open();
  t.equal(await running, 'done');
  await timers.advance(0);
  t.ok(idle);
  t.equal(timers.size, 0, 'no timer left armed');
});

t.test('a failing call frees its slot', async (t) => {
  const c = settableClock(1_000_000);
  const limiter = new HubLimiter({ maxInFlight: 1, clock: c, timers: new FakeTimers(c), perSecond: () => 1_000 });
  await t.rejects(
    limiter.run('urgent', async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  t.equal(await limiter.run('urgent', async () => 42), 42);
});

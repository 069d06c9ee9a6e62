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
  const limiter = new HubLimiter({ maxInFlight: 2, clock: c, timers, spacingMs: () => 0 });
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

t.test('background calls are spaced; urgent ones are not', async (t) => {
  const c = settableClock(1_000_000);
  const timers = new FakeTimers(c);
  const limiter = new HubLimiter({ maxInFlight: 4, burst: 1, clock: c, timers, spacingMs: () => 150 });
  const starts: Array<[string, number]> = [];
  const background = Array.from({ length: 20 }, (_, i) =>
    limiter.run('background', async () => {
      starts.push([`b${i}`, c.now()]);
    }),
  );
  await timers.advance(0);
  t.same(starts, [['b0', 1_000_000]], 'one at once, the rest wait for their turn');
  await limiter.run('urgent', async () => {
    starts.push(['u', c.now()]);
  });
  t.same(starts.at(-1), ['u', 1_000_000], 'urgent: no waiting');
  await timers.advance(10_000);
  await Promise.all(background);
  const times = starts.filter(([n]) => n !== 'u').map(([, at]) => at);
  for (let i = 1; i < times.length; i++) {
    if (times[i]! - times[i - 1]! < 150) t.fail(`starts ${i - 1} and ${i} only ${times[i]! - times[i - 1]!} ms apart`);
  }
  t.equal(times.at(-1)! - times[0]!, 150 * 19, 'twenty starts, 150 ms apart');
});

t.test('a burst passes at once after a quiet spell, then the pace holds', async (t) => {
  const c = settableClock(1_000_000);
  const timers = new FakeTimers(c);
  const limiter = new HubLimiter({ maxInFlight: 4, clock: c, timers, spacingMs: () => 100 });
  const starts: number[] = [];
  const run = (n: number) =>
    Array.from({ length: n }, () => limiter.run('background', async () => void starts.push(c.now() - 1_000_000)));
  let calls = run(10);
  await timers.advance(10_000);
  await Promise.all(calls);
  t.same(starts, [0, 0, 0, 0, 100, 200, 300, 400, 500, 600], 'four (maxInFlight) at once, then one per 100 ms');
  starts.length = 0;
  await timers.advance(250);
  calls = run(4);
  await timers.advance(10_000);
  await Promise.all(calls);
  t.same(starts, [10_250, 10_250, 10_250, 10_250], 'a quiet spell refills the bucket, up to the burst');
  starts.length = 0;
  calls = run(2);
  await timers.advance(10_000);
  await Promise.all(calls);
  t.same(starts, [20_250, 20_250]);
});

t.test('a clock that jumped backwards does not stall background calls', async (t) => {
  const c = settableClock(1_000_000);
  const timers = new FakeTimers(c);
  const limiter = new HubLimiter({ maxInFlight: 1, clock: c, timers, spacingMs: () => 1_000 });
  await limiter.run('background', async () => {});
  c.set(1_000_000 - 3_600_000);
  let ran = false;
  const p = limiter.run('background', async () => {
    ran = true;
  });
  await timers.advance(0);
  t.notOk(ran, 'still spaced');
  await timers.advance(1_000);
  await p;
  t.ok(ran, 'after one spacing, not after an hour');
});

t.test('close fails queued calls and refuses new ones; running calls finish; idle waits for them', async (t) => {
  const c = settableClock(1_000_000);
  const timers = new FakeTimers(c);
  const limiter = new HubLimiter({ maxInFlight: 1, clock: c, timers, spacingMs: () => 0 });
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
  const limiter = new HubLimiter({ maxInFlight: 1, clock: c, timers: new FakeTimers(c), spacingMs: () => 0 });
  await t.rejects(
    limiter.run('urgent', async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  t.equal(await limiter.run('urgent', async () => 42), 42);
});

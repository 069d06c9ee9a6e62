import t from 'tap';
import { HUB_MAX_IN_FLIGHT, HubConditions, retryAfterOf } from '../../src/scheduler/hub-conditions.js';
import { HubError } from '../../src/upstream/errors.js';
import { FakeTimers, settableClock } from '../helpers/fake-timers.js';

const T = Date.parse('2026-11-01T12:00:00Z');

t.test('each hub has its own limiter and its own clock estimate', async (t) => {
  const c = settableClock(T);
  const timers = new FakeTimers(c);
  const hubs = new HubConditions({ clock: c, timers, lifetimesOn: () => [] });
  const running = new Map<string, number>();
  const peak = new Map<string, number>();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const call = (hub: string) =>
    hubs.run(hub, 'urgent', async () => {
      running.set(hub, (running.get(hub) ?? 0) + 1);
      peak.set(hub, Math.max(peak.get(hub) ?? 0, running.get(hub)!));
      await gate;
      running.set(hub, running.get(hub)! - 1);
    });
  const calls = [
    ...Array.from({ length: 10 }, () => call('https://a')),
    ...Array.from({ length: 3 }, () => call('https://b')),
  ];
  await timers.advance(0);
  t.equal(peak.get('https://a'), HUB_MAX_IN_FLIGHT);
  t.equal(peak.get('https://b'), 3, 'one busy hub does not hold up another');
  release();
  await Promise.all(calls);
  await hubs.idle();

  hubs.observeDate('https://a', { hubDate: T + 240_000, sentAt: T, receivedAt: T + 20 });
  t.ok(Math.abs(hubs.offsetMs('https://a')! - 240_000) <= 1_000);
  t.ok(hubs.aheadMs('https://a') >= 239_000);
  t.equal(hubs.offsetMs('https://b'), null);
  t.equal(hubs.aheadMs('https://never-called'), 0);
});

t.test('background calls to a hub are paced by the lifetimes of its workspaces', async (t) => {
  const c = settableClock(T);
  const timers = new FakeTimers(c);
  const hubs = new HubConditions({ clock: c, timers, lifetimesOn: () => Array.from({ length: 200 }, () => 120_000) });
  const starts: number[] = [];
  const calls = Array.from({ length: 15 }, () =>
    hubs.run('https://a', 'background', async () => void starts.push(c.now())),
  );
  await timers.advance(60_000);
  await Promise.all(calls);
  t.same(
    starts.map((s) => s - T),
    [0, 0, 0, 0, 0, 0, 0, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 2_000],
    '200 workspaces renewing every minute: up to 7 a second',
  );
});

t.test('retryAfterOf reads what the hub client carried', async (t) => {
  t.equal(
    retryAfterOf(new HubError('rate_limited', 'x', { method: 'POST', path: '/', retryAfterMs: 120_000 })),
    120_000,
  );
  t.equal(retryAfterOf(new HubError('hub_down', 'x', { method: 'POST', path: '/' })), undefined);
  t.equal(retryAfterOf(new Error('x')), undefined);
  t.equal(retryAfterOf(null), undefined);
});

/**
 * #13 against the real hub simulator on one injected clock: recovery within seconds of the hub
 * answering again, Retry-After honoured per workspace, hub calls spread over time with 200
 * workspaces, and expiry judged by the more pessimistic of our clock and the hub's.
 */
import t from 'tap';
import { isServable } from '../../src/core/policy.js';
import type { S3Credentials } from '../../src/core/types.js';
import type { FaultMode } from '../../src/hub-sim/state.js';
import { brokerFixture, type Fixture } from '../helpers/broker-fixture.js';

const SECOND = 1_000;
const MINUTE = 60_000;

/** A client polling every `every` ms for `ms`, the way an SDK retries a 503; returns what it got. */
async function poll(f: Fixture, ms: number, every = 500, workspace = 'ws') {
  const answers: Array<{ at: number; credential: S3Credentials | null }> = [];
  const end = f.clock.now() + ms;
  while (f.clock.now() < end) {
    await f.timers.advance(every);
    answers.push({ at: f.clock.now(), credential: await f.broker.credentials(workspace) });
  }
  return answers;
}

const s3Calls = async (f: Fixture) => (await f.simClient.stats()).total.s3Tokens;

const faults: Array<{ mode: FaultMode; retryAfter?: string }> = [
  { mode: 'down' },
  { mode: 'error500' },
  { mode: 'garbage' },
  { mode: 'unavailable', retryAfter: '' },
  { mode: 'rate_limited', retryAfter: '1' },
];

for (const { mode, retryAfter } of faults) {
  t.test(`${mode} for 150 s with 120 s credentials: the first answer within 5 s of the hub's return`, async (t) => {
    const f = await brokerFixture(t, { s3LifetimeSeconds: 120 });
    t.ok(await f.broker.credentials('ws'), 'served before the fault');
    await f.simClient.setFault(mode, retryAfter === undefined ? {} : { retryAfter });
    const before = await s3Calls(f);
    const during = await poll(f, 150 * SECOND);
    const outageCalls = (await s3Calls(f)) - before;
    t.ok(
      during.some((a) => a.credential === null),
      'the credential ran out during the fault',
    );
    for (const { at, credential } of during) {
      if (credential && !isServable(credential, at)) t.fail(`served a credential past its safety margin at ${at}`);
    }
    // Clients are refused for most of the fault: one call per 2 s per workspace at most.
    t.ok(outageCalls <= 150 / 2 + 5, `${outageCalls} hub calls in 150 s of fault`);
    await f.simClient.setFault('none');
    const healed = f.clock.now();
    const after = await poll(f, 10 * SECOND);
    const first = after.find((a) => a.credential !== null);
    t.ok(first, 'served again');
    t.comment(`${mode}: ${outageCalls} hub calls in 150 s; first 200 ${first!.at - healed} ms after the hub came back`);
    t.ok(first!.at - healed <= 5 * SECOND, `first answer ${first!.at - healed} ms after the hub came back`);
  });
}

t.test('with no client asking, its own timer retries at most 30 s apart once nothing is held', async (t) => {
  const f = await brokerFixture(t, { s3LifetimeSeconds: 120 });
  await f.timers.advance(0); // the cold workspace's timer fills it
  t.equal(await s3Calls(f), 1);
  await f.simClient.setFault('down');
  await f.timers.advance(20 * MINUTE);
  const calls = f.sim.state.calls().map((c) => c.at);
  const late = calls.filter((at) => at > f.clock.now() - 15 * MINUTE);
  for (let i = 1; i < late.length; i++) {
    if (late[i]! - late[i - 1]! > 30 * SECOND) t.fail(`${late[i]! - late[i - 1]!} ms between retries`);
  }
  t.ok(late.length >= 15 * 2 - 1, `${late.length} retries in the last 15 min`);
  await f.simClient.setFault('none');
  const healed = f.clock.now();
  await f.timers.advance(31 * SECOND);
  const held = f.broker.slot('ws')?.current;
  t.ok(held && held.issuedAt - healed <= 30 * SECOND, 'renewed within 30 s of the hub coming back');
  t.equal(await f.broker.credentials('ws'), held, 'and served from memory');
});

t.test('Retry-After: 120 on a 429 is the next attempt for the workspace, whatever the clients do', async (t) => {
  const f = await brokerFixture(t, { s3LifetimeSeconds: 120 });
  await f.broker.credentials('ws');
  f.clock.advance(2 * MINUTE); // expired: clients are refused from here on
  await f.simClient.setFault('rate_limited', { retryAfter: '120' });
  const before = await s3Calls(f);
  await poll(f, 150 * SECOND);
  const calls = f.sim.state.calls().slice(before);
  t.equal(calls.length, 2, 'one call, then one more once the 120 s have passed');
  const gap = calls[1]!.at - calls[0]!.at;
  t.ok(gap >= 120 * SECOND && gap <= 126 * SECOND, `second call ${gap} ms after the first`);
  t.match(f.broker.slot('ws')?.lastError, { code: 'rate_limited' });
});

t.test('Retry-After as an HTTP date, and a cap of 10 minutes', async (t) => {
  const f = await brokerFixture(t, { s3LifetimeSeconds: 120 });
  await f.broker.credentials('ws');
  f.clock.advance(2 * MINUTE);
  await f.simClient.setFault('unavailable', { retryAfter: new Date(f.clock.now() + 90 * SECOND).toUTCString() });
  const before = await s3Calls(f);
  await poll(f, 100 * SECOND, 1_000);
  let calls = f.sim.state.calls().slice(before);
  t.ok(calls.length >= 2);
  t.ok(calls[1]!.at - calls[0]!.at >= 89 * SECOND, 'waited until the date');

  await f.simClient.setFault('rate_limited', { retryAfter: '86400' });
  const mark = f.clock.now();
  await poll(f, 15 * MINUTE, 5_000);
  calls = f.sim.state.calls().filter((c) => c.at > mark);
  const gaps = calls.slice(1).map((c, i) => c.at - calls[i]!.at);
  t.ok(gaps.length >= 1, 'asked again within 15 min although the hub said a day');
  t.ok(
    gaps.every((g) => g >= 10 * MINUTE && g <= 10 * MINUTE + 11 * SECOND),
    `every 10 min: ${gaps.join(', ')}`,
  );
});

t.test('Retry-After is per workspace: the others keep renewing', async (t) => {
  const f = await brokerFixture(t, { s3LifetimeSeconds: 120, workspaces: ['a', 'b'] });
  await f.broker.credentials('a');
  await f.broker.credentials('b');
  await f.simClient.setFault('rate_limited', { retryAfter: '300', count: 1 });
  f.clock.advance(2 * MINUTE);
  t.equal(await f.broker.credentials('a'), null, 'a was told to wait');
  t.ok(await f.broker.credentials('b'), 'b was not');
  const a = f.broker.slot('a')!;
  t.ok(a.retryAt - f.clock.now() >= 300 * SECOND, 'a waits 5 min');
});

/** Hub calls per second from the simulator's call log: peak, mean and their ratio. */
function spread(calls: Array<{ at: number }>, from: number, to: number) {
  const bins = new Map<number, number>();
  for (const { at } of calls)
    if (at >= from && at < to) bins.set(Math.floor(at / 1000), (bins.get(Math.floor(at / 1000)) ?? 0) + 1);
  const total = [...bins.values()].reduce((a, b) => a + b, 0);
  const mean = total / ((to - from) / 1000);
  const peak = Math.max(0, ...bins.values());
  return { total, mean, peak, ratio: peak / mean };
}

t.test('200 workspaces: peak hub calls per second at most 3x the mean, cold start and outage included', async (t) => {
  const names = Array.from({ length: 200 }, (_, i) => `ws-${String(i).padStart(3, '0')}`);
  const f = await brokerFixture(t, { s3LifetimeSeconds: 120, workspaces: names });
  const start = f.clock.now();
  await f.timers.advance(3 * MINUTE); // cold start: nothing held
  await f.simClient.setFault('down');
  await f.timers.advance(90 * SECOND);
  await f.simClient.setFault('none');
  await f.timers.advance(210 * SECOND); // recovery and steady state
  const end = f.clock.now();
  const calls = f.sim.state.calls();
  const whole = spread(calls, start, end);
  const coldStart = spread(calls, start, start + MINUTE);
  const afterOutage = spread(calls, start + 270 * SECOND, start + 330 * SECOND);
  t.comment(
    `200 workspaces, 120 s credentials, 8 min (90 s of them hub down): ${whole.total} calls, mean ${whole.mean.toFixed(2)}/s, ` +
      `peak ${whole.peak}/s (${whole.ratio.toFixed(2)}x); first minute peak ${coldStart.peak}/s; ` +
      `minute after the outage peak ${afterOutage.peak}/s`,
  );
  t.ok(whole.ratio <= 3, `peak ${whole.peak}/s vs mean ${whole.mean.toFixed(2)}/s`);
  for (const name of names) {
    const held = f.broker.slot(name)?.current;
    if (!held || !isServable(held, end)) t.fail(`${name} holds nothing servable at the end`);
  }
});

t.test('no more than a few hub calls in flight to one hub', async (t) => {
  const names = Array.from({ length: 30 }, (_, i) => `w${i}`);
  // The wait covers thirty answers saved one after another to the database.
  const f = await brokerFixture(t, { workspaces: names, requestWaitMs: 5_000 });
  let running = 0;
  let peak = 0;
  f.sim.app.server.on('request', (_req, res) => {
    running += 1;
    peak = Math.max(peak, running);
    res.once('close', () => {
      running -= 1;
    });
  });
  await f.simClient.setFault('slow', { delayMs: 20 });
  // Thirty clients at once, each on a cold workspace: urgent calls, limited but not spaced.
  const answers = await Promise.all(names.map((n) => f.broker.credentials(n)));
  t.ok(
    answers.every((a) => a !== null),
    'all served',
  );
  t.ok(peak >= 2 && peak <= 4, `at most 4 at once (saw ${peak})`);
});

for (const skew of [4 * MINUTE, -4 * MINUTE]) {
  const words = skew > 0 ? 'ahead' : 'behind';
  t.test(`a hub whose clock is 4 min ${words}: never served past expiry by either clock`, async (t) => {
    const f = await brokerFixture(t, { s3LifetimeSeconds: 600, hubClockSkewMs: skew });
    const first = await f.broker.credentials('ws');
    t.ok(first, 'served');
    const offset = f.broker.views()[0]?.hubClockOffsetMs ?? null;
    t.ok(offset !== null && Math.abs(offset - skew) <= 1_500, `offset estimated as ${offset} ms`);
    // What the hub wrote: its own clock at minting plus the lifetime.
    const written = first!.issuedAt + skew + 600_000;
    if (skew > 0) t.ok(first!.expiresAt <= written - skew + 1_000, 'held as expiring 4 min earlier than written');
    else t.equal(first!.expiresAt, written, 'held as written: our clock is the pessimistic one');
    await f.simClient.setFault('down');
    let last: S3Credentials | null = null;
    for (let i = 0; i < 12 * 60; i++) {
      await f.timers.advance(SECOND);
      const c = await f.broker.credentials('ws');
      if (!c) continue;
      last = c;
      const local = f.clock.now();
      if (local >= written || local + skew >= written) t.fail(`served at ${local} a credential expired by one clock`);
    }
    t.ok(last, 'served for a while with the hub down');
    t.equal(await f.broker.credentials('ws'), null, 'then nothing');
  });
}

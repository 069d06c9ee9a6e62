/**
 * Sixty days of simulated time against the hub simulator (real HTTP, shared manual clock): one-hour
 * S3 credentials, 30-day keys rotated 7 days before expiry, outages and bad answers injected, and a
 * client that behaves like botocore (comes back when its credential has 15 min left). Asserts that
 * nothing expired is ever served, that while the hub answers every served credential has at least
 * 15 min left, and that every key the daemon switches to works.
 */
import t from 'tap';
import { durations } from '../../src/core/policy.js';
import type { S3Credentials } from '../../src/core/types.js';
import type { FaultMode } from '../../src/hub-sim/state.js';
import { HubClient } from '../../src/upstream/client.js';
import { brokerFixture, liveTokens } from '../helpers/broker-fixture.js';

const { MINUTE, HOUR, DAY } = durations;
const DAYS = Number(process.env.SOAK_DAYS ?? 60);
/** The sweep runs every 10 s in the daemon; two simulated minutes is fine enough for one-hour credentials. */
const STEP = 2 * MINUTE;

/** Deterministic pseudo-random numbers, so a failure can be replayed. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

t.test(`soak: ${DAYS} simulated days`, async (t) => {
  const f = await brokerFixture(t, { keyDays: 30 });
  const random = seeded(Number(process.env.SOAK_SEED ?? 20261126));
  const hub = new HubClient(f.sim.url, { timeoutMs: 2_000, retries: 0, backoff: { initialMs: 10, maxMs: 10 } });

  // Fault windows: every ~2 days one of the failure modes, lasting 5–45 minutes.
  const modes: FaultMode[] = ['down', 'error500', 'garbage', 'rate_limited', 's3_forbidden'];
  const windows: Array<{ from: number; to: number; mode: FaultMode }> = [];
  for (let at = f.clock.now() + DAY; at < f.clock.now() + DAYS * DAY; at += DAY + random() * 2 * DAY) {
    windows.push({
      from: at,
      to: at + (5 + random() * 40) * MINUTE,
      mode: modes[Math.floor(random() * modes.length)]!,
    });
  }
  let lastFaultEnd = 0;
  let faultOn = false;
  let held: S3Credentials | null = null;
  let served = 0;
  let unavailable = 0;
  let keySeen = f.broker.apiKey('ws')!.key;
  let rotations = 0;
  let violations = 0;
  const end = f.clock.now() + DAYS * DAY;

  while (f.clock.now() < end) {
    f.clock.advance(STEP);
    const now = f.clock.now();
    const window = windows.find((w) => w.from <= now && now < w.to);
    if (window && !faultOn) {
      await f.simClient.setFault(window.mode);
      faultOn = true;
    } else if (!window && faultOn) {
      await f.simClient.setFault('none');
      faultOn = false;
      lastFaultEnd = now;
    }
    await f.sweep();
    await f.settle();

    // botocore: refresh when the held credential has under 15 minutes left.
    if (!held || held.expiresAt - now < 15 * MINUTE) {
      const answer = await f.broker.credentials('ws');
      if (answer) {
        served++;
        const left = answer.expiresAt - now;
        if (left <= 0) {
          violations++;
          t.fail(`expired credential served at ${new Date(now).toISOString()}`);
        }
        // While the hub answers (and has answered for longer than one maximal backoff), the
        // credential must be comfortably outside botocore's refresh window.
        if (!faultOn && now - lastFaultEnd > 6 * MINUTE && left < 15 * MINUTE) {
          violations++;
          t.fail(
            `served with ${Math.round(left / 1000)} s left while the hub was up, at ${new Date(now).toISOString()}`,
          );
        }
        held = answer;
      } else {
        unavailable++;
        if (!faultOn && now - lastFaultEnd > 6 * MINUTE)
          t.fail(`503 while the hub was up at ${new Date(now).toISOString()}`);
      }
    }
    if (held && held.expiresAt <= now) held = null; // the client drops what expired

    const key = f.broker.apiKey('ws')!.key;
    if (key !== keySeen) {
      rotations++;
      keySeen = key;
      if (!faultOn) {
        try {
          await hub.listTokens('ws', key);
        } catch (err) {
          t.fail(`the new active key does not work: ${(err as Error).message}`);
        }
      }
    }
    if (violations > 5) break;
  }
  await f.simClient.setFault('none');
  f.clock.advance(10 * MINUTE);
  await f.sweep();
  await f.settle();

  const stats = (await f.simClient.stats()).total;
  t.comment(
    `served ${served}, unavailable ${unavailable}, rotations ${rotations}, hub s3 calls ${stats.s3Tokens}, fault windows ${windows.length}`,
  );
  t.equal(violations, 0, 'no served credential broke the rules');
  t.ok(rotations >= Math.floor((DAYS - 23) / 23), `rotated the key ${rotations} times`);
  t.ok(stats.s3Tokens < (DAYS * DAY) / (20 * MINUTE), 'no renewal storm: about two hub calls an hour');
  const live = await liveTokens(f);
  t.same(
    live.map((k) => k.id),
    [f.broker.apiKey('ws')!.tokenId],
    'one live key on the hub: every old one revoked',
  );
  t.ok(f.broker.apiKey('ws')!.expiresAt! - f.clock.now() > 7 * DAY - HOUR, 'the active key is never left to expire');
});

import t, { type Test } from 'tap';
import { durations } from '../../src/core/policy.js';
import type { RotationStep } from '../../src/scheduler/rotation.js';
import { HubClient } from '../../src/upstream/client.js';
import { brokerFixture, type Fixture, liveTokens } from '../helpers/broker-fixture.js';

const { DAY } = durations;
const STEPS: RotationStep[] = ['intent', 'minted', 'persisted', 'verified', 'promoted', 'revoked'];

async function keyWorks(f: Fixture, key: string): Promise<boolean> {
  const hub = new HubClient(f.sim.url, { timeoutMs: 2_000, retries: 0, backoff: { initialMs: 10, maxMs: 10 } });
  try {
    await hub.listTokens('ws', key);
    return true;
  } catch {
    return false;
  }
}

/** The invariants after any rotation has settled: one active key, it works, nothing else of ours lives. */
async function assertSettled(t: Test, f: Fixture): Promise<void> {
  const id = f.store.getWorkspace('ws')!.id;
  const keys = f.store.apiKeys(id);
  t.same(
    keys.map((k) => k.state),
    ['active'],
    'exactly one key, active',
  );
  t.ok(await keyWorks(f, keys[0]!.key), 'the active key works');
  const live = await liveTokens(f);
  t.same(
    live.map((k) => k.id),
    [keys[0]!.tokenId],
    'the hub holds no other live key: no orphan, old key revoked',
  );
  t.equal(f.store.status(id).mintingSince, null, 'no minting mark left');
}

t.test('not due: nothing happens', async (t) => {
  const f = await brokerFixture(t, { keyDays: 30 });
  await f.broker.sweep();
  t.equal((await f.simClient.stats()).total.mintTokens, 0);
  t.equal(await f.broker.rotate('ws'), 'not_due');
});

t.test('due: mint, persist, verify, promote, revoke', async (t) => {
  const f = await brokerFixture(t, { keyDays: 3 });
  const before = f.broker.apiKey('ws')!;
  t.equal(await f.broker.rotate('ws'), 'rotated');
  const after = f.broker.apiKey('ws')!;
  t.not(after.key, before.key, 'the broker uses the new key at once');
  t.match(after.name, /^eodh-credd \S+ [0-9a-f]{8} \d{4}-\d\d-\d\dT/, 'named so orphans can be found');
  t.ok(after.expiresAt! - f.clock.now() >= 29 * DAY, '30-day key');
  t.notOk(await keyWorks(f, before.key), 'old key revoked on the hub');
  await assertSettled(t, f);
  t.ok(await f.broker.credentials('ws'), 'S3 renewal works with the new key');
});

t.test('the sweep starts a rotation once the key is within rotate_before of expiry', async (t) => {
  const f = await brokerFixture(t, { keyDays: 30 });
  await f.broker.sweep();
  t.equal((await f.simClient.stats()).total.mintTokens, 0);
  f.clock.advance(23 * DAY + 1);
  await f.broker.sweep();
  await f.broker.settle();
  t.equal((await f.simClient.stats()).total.mintTokens, 1);
  await assertSettled(t, f);
});

t.test('unknown expiry: rotated within a day', async (t) => {
  const f = await brokerFixture(t, { tokenIdKnown: false });
  await f.broker.sweep();
  await f.broker.settle();
  t.equal((await f.simClient.stats()).total.mintTokens, 0, 'not at once');
  f.clock.advance(DAY);
  await f.broker.sweep();
  await f.broker.settle();
  t.equal((await f.simClient.stats()).total.mintTokens, 1, 'within a day');
  const id = f.store.getWorkspace('ws')!.id;
  t.same(
    f.store.apiKeys(id).map((k) => k.state),
    ['active'],
    'old key (no token id) forgotten',
  );
  t.ok(f.broker.apiKey('ws')!.expiresAt, 'the new key has a known expiry');
});

t.test('the hub refuses to mint with an API key: needs the user, keeps serving, retries a day later', async (t) => {
  const f = await brokerFixture(t, { keyDays: 3 });
  await f.simClient.settings({ allowMintWithApiKey: false });
  t.equal(await f.broker.rotate('ws'), 'needs_user');
  const id = f.store.getWorkspace('ws')!.id;
  t.match(f.store.status(id), { rotationState: 'needs_user', rotationNote: /workspace set-key ws/ });
  t.equal(f.store.status(id).mintingSince, null, 'nothing was minted');
  t.ok(await f.broker.credentials('ws'), 'still serving');
  t.ok(
    f.logs.some((l) => /cannot be rotated automatically/.test(l)),
    'warned',
  );
  await f.broker.sweep();
  await f.broker.settle();
  t.equal((await f.simClient.stats()).total.mintTokens, 1, 'not retried at once');
  // The user supplies a fresh key (workspace set-key): state back to ok.
  const fresh = await f.simClient.createKey('ws', { expiresDays: 30 });
  f.store.replaceActiveKey(id, { tokenId: fresh.id, key: fresh.token, expiresAt: Date.parse(fresh.expiry) });
  const again = f.restart();
  t.equal(again.broker.slot('ws')!.rotation.needsUser, false);
  t.equal(f.store.status(id).rotationState, 'ok');
});

t.test('the daily warning starts 7 days out and repeats once a day', async (t) => {
  const f = await brokerFixture(t, { keyDays: 10, rotateBeforeDays: 12 });
  await f.simClient.settings({ allowMintWithApiKey: false });
  await f.broker.rotate('ws');
  const warnings = () => f.logs.filter((l) => /cannot be rotated automatically/.test(l)).length;
  const first = warnings();
  await f.broker.sweep();
  t.equal(warnings(), first, '10 days out: no daily warning yet');
  f.clock.advance(3 * DAY + 1);
  await f.broker.sweep();
  t.equal(warnings(), first + 1, '7 days out: warned');
  await f.broker.sweep();
  t.equal(warnings(), first + 1, 'not again the same day');
  f.clock.advance(DAY);
  await f.broker.sweep();
  t.equal(warnings(), first + 2, 'next day: again');
});

t.test('a pending key the hub refuses is dropped, the active one kept', async (t) => {
  const f = await brokerFixture(t, { keyDays: 30 });
  const id = f.store.getWorkspace('ws')!.id;
  f.store.insertPendingKey(id, { tokenId: 'bogus', key: 'not-a-key', expiresAt: f.clock.now() + DAY }, 'x');
  const restarted = f.restart();
  t.equal(await restarted.broker.rotate('ws'), 'recovered');
  await assertSettled(t, restarted);
});

for (const step of STEPS) {
  t.test(`a crash right after "${step}" is finished by the next start`, async (t) => {
    class Crash extends Error {}
    const f = await brokerFixture(t, {
      keyDays: 3,
      onStep: (s) => {
        if (s === step) throw new Crash(`crash after ${s}`);
      },
    });
    t.equal(await f.broker.rotate('ws'), 'failed', 'the first run dies at the step');
    const restarted = f.restart();
    await restarted.broker.sweep();
    await restarted.broker.settle();
    await assertSettled(t, restarted);
    t.ok(restarted.broker.apiKey('ws')!.expiresAt! - f.clock.now() > 20 * DAY, 'rotated to a fresh key');
  });
}

t.test('recovery waits for the hub: down during recovery, converges when it answers', async (t) => {
  class Crash extends Error {}
  const f = await brokerFixture(t, {
    keyDays: 3,
    onStep: (s) => {
      if (s === 'minted') throw new Crash('crash');
    },
  });
  await f.broker.rotate('ws');
  await f.simClient.setFault('down');
  const restarted = f.restart();
  t.equal(await restarted.broker.rotate('ws'), 'failed');
  t.ok(f.store.status(f.store.getWorkspace('ws')!.id).mintingSince !== null, 'the mark survives a failed recovery');
  await f.simClient.setFault('none');
  f.clock.advance(10 * 60_000);
  await restarted.broker.sweep();
  await restarted.broker.settle();
  await assertSettled(t, restarted);
});

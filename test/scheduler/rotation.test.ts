/**
 * API-key rotation against the hub simulator (real HTTP, real SQLite, one manual clock), for every
 * answer the hub's undocumented token API might give (#11), with the invariants checked at every
 * step of the protocol, not only at the end (#17):
 *
 *  - the key the database holds as active works on the hub (s3-tokens);
 *  - no key the installation still needs (active or pending) has been revoked;
 *  - no key is revoked while a renewal is using it;
 *  - no key is revoked that this installation did not mint (the pasted key, other workspaces' keys).
 */
import t, { type Test } from 'tap';
import { durations } from '../../src/core/policy.js';
import type { Hub } from '../../src/scheduler/hub.js';
import { MIN_ROTATION_INTERVAL_MS, type RotationStep } from '../../src/scheduler/rotation.js';
import { HubClient } from '../../src/upstream/client.js';
import { brokerFixture, type Fixture, type FixtureOptions, liveTokens } from '../helpers/broker-fixture.js';

const { DAY, HOUR, MINUTE } = durations;
const STEPS: RotationStep[] = ['intent', 'minted', 'persisted', 'verified', 'promoted', 'revoked'];

async function keyWorks(f: Fixture, key: string, workspace = 'ws'): Promise<boolean> {
  const hub = new HubClient(f.sim.url, { timeoutMs: 2_000, retries: 0, backoff: { initialMs: 10, maxMs: 10 } });
  try {
    await hub.s3Credentials(workspace, key, f.clock.now());
    return true;
  } catch {
    return false;
  }
}

/** Ids of keys on the hub that have been revoked. */
async function revokedIds(f: Fixture): Promise<Set<string>> {
  return new Set((await f.simClient.tokens()).filter((k) => k.revoked).map((k) => k.id));
}

/**
 * The invariants that must hold at every step: the active key works on the hub, and no key the
 * installation still needs (active, pending) has been revoked. Returns the violations found.
 */
async function invariantViolations(f: Fixture, workspace = 'ws'): Promise<string[]> {
  const record = f.store.getWorkspace(workspace);
  if (!record) return [];
  const keys = f.store.apiKeys(record.id);
  const out: string[] = [];
  const active = keys.find((k) => k.state === 'active');
  if (!active) out.push('no active key');
  else if (!(await keyWorks(f, active.key, workspace))) out.push('the active key does not work on the hub');
  const revoked = await revokedIds(f);
  for (const k of keys) {
    if ((k.state === 'active' || k.state === 'pending') && k.tokenId !== null && revoked.has(k.tokenId)) {
      out.push(`a ${k.state} key was revoked`);
    }
  }
  return out;
}

/** A fixture whose every rotation step checks the invariants (and may then crash). */
async function checkedFixture(
  t: Test,
  options: FixtureOptions & { crashAfter?: RotationStep } = {},
): Promise<{ f: Fixture; violations: string[] }> {
  class Crash extends Error {}
  const violations: string[] = [];
  let f: Fixture | undefined;
  const onStep = async (step: RotationStep, workspace: string) => {
    if (f) for (const v of await invariantViolations(f, workspace)) violations.push(`after "${step}": ${v}`);
    if (step === options.crashAfter) throw new Crash(`crash after ${step}`);
  };
  f = await brokerFixture(t, { ...options, onStep });
  return { f, violations };
}

/** The invariants after any rotation has settled: one active key, it works, nothing else of ours lives. */
async function assertSettled(t: Test, f: Fixture, workspace = 'ws', pasted: string[] = []): Promise<void> {
  const id = f.store.getWorkspace(workspace)!.id;
  const keys = f.store.apiKeys(id);
  t.same(
    keys.map((k) => k.state),
    ['active'],
    'exactly one key, active',
  );
  t.ok(await keyWorks(f, keys[0]!.key, workspace), 'the active key works');
  const live = await liveTokens(f, workspace);
  t.same(
    live
      .map((k) => k.id)
      .filter((id) => !pasted.includes(id))
      .sort(),
    [keys[0]!.tokenId].filter((id) => !pasted.includes(id!)),
    'the hub holds no other live key of ours: no orphan, old key revoked',
  );
  t.equal(f.store.status(id).mintingSince, null, 'no minting mark left');
}

/** The ids of the keys the user made in the web UI (pasted), which no installation may revoke. */
async function pastedIds(f: Fixture, workspace = 'ws'): Promise<string[]> {
  return (await f.simClient.tokens())
    .filter((k) => k.workspace === workspace && k.name === 'made in the web UI')
    .map((k) => k.id);
}

t.test('not due: nothing happens', async (t) => {
  const f = await brokerFixture(t, { keyDays: 30 });
  await f.sweep();
  t.equal((await f.simClient.stats()).total.mintTokens, 0);
  t.equal(await f.rotate(), 'not_due');
});

t.test('due: mint, persist, verify with s3-tokens, promote; the pasted key is never revoked', async (t) => {
  const { f, violations } = await checkedFixture(t, { keyDays: 3 });
  const before = f.broker.apiKey('ws')!;
  const pasted = await pastedIds(f);
  t.equal(await f.rotate(), 'rotated');
  const after = f.broker.apiKey('ws')!;
  t.not(after.key, before.key, 'the broker uses the new key at once');
  t.match(after.name, /^eodh-credd \S+ [0-9a-f]{8} ws \d{4}-\d\d-\d\dT/, 'named with the install id and workspace');
  t.ok(after.expiresAt! - f.clock.now() >= 29 * DAY, '30-day key');
  t.ok(await keyWorks(f, before.key), 'the pasted key still works: another machine or a notebook may use it');
  t.same(violations, [], 'invariants held at every step');
  await assertSettled(t, f, 'ws', pasted);
  t.equal(f.store.apiKeys(f.store.getWorkspace('ws')!.id).length, 1, 'the pasted key is forgotten here');
  t.ok(await f.broker.credentials('ws'), 'S3 renewal works with the new key');
  t.match(f.store.status(f.store.getWorkspace('ws')!.id).capabilities, { mint: { state: 'allowed' } });
});

t.test('a key this installation minted is revoked when it is replaced', async (t) => {
  const { f, violations } = await checkedFixture(t, { keyDays: 3, firstKeyMinted: true });
  const before = f.broker.apiKey('ws')!;
  t.equal(await f.rotate(), 'rotated');
  t.notOk(await keyWorks(f, before.key), 'old key revoked on the hub');
  t.same(violations, []);
  await assertSettled(t, f);
  t.match(f.store.status(f.store.getWorkspace('ws')!.id).capabilities, { delete: { state: 'allowed' } });
});

t.test('the sweep starts a rotation once the key is within rotate_before of expiry', async (t) => {
  const f = await brokerFixture(t, { keyDays: 30 });
  await f.sweep();
  t.equal((await f.simClient.stats()).total.mintTokens, 0);
  f.clock.advance(23 * DAY + 1);
  await f.sweep();
  t.equal((await f.simClient.stats()).total.mintTokens, 1);
  await assertSettled(t, f, 'ws', await pastedIds(f));
});

t.test('unknown expiry: rotated within a day', async (t) => {
  const f = await brokerFixture(t, { tokenIdKnown: false });
  await f.sweep();
  t.equal((await f.simClient.stats()).total.mintTokens, 0, 'not at once');
  f.clock.advance(DAY);
  await f.sweep();
  t.equal((await f.simClient.stats()).total.mintTokens, 1, 'within a day');
  const id = f.store.getWorkspace('ws')!.id;
  t.same(
    f.store.apiKeys(id).map((k) => k.state),
    ['active'],
    'old key (no token id) forgotten',
  );
  t.ok(f.broker.apiKey('ws')!.expiresAt, 'the new key has a known expiry');
});

for (const status of [401, 403, 404, 405, 400]) {
  t.test(`the hub refuses to mint with ${status}: "rotation needs you" at once, keeps serving`, async (t) => {
    const f = await brokerFixture(t, { keyDays: 3 });
    await f.simClient.settings({ mintRefusedStatus: status });
    t.equal(await f.rotate(), 'needs_user');
    const id = f.store.getWorkspace('ws')!.id;
    t.match(f.store.status(id), {
      rotationState: 'needs_user',
      rotationNote: new RegExp(`answered ${status} to minting.*workspace set-key ws`),
      mintingSince: null,
      capabilities: { mint: { state: 'refused', status } },
    });
    t.ok(await f.broker.credentials('ws'), 'still serving with the current key');
    await f.sweep();
    t.equal((await f.simClient.stats()).total.mintTokens, 1, 'not retried at once');
    f.clock.advance(DAY + 1);
    await f.sweep();
    t.equal((await f.simClient.stats()).total.mintTokens, 2, 'tried again a day later');
  });
}

t.test('a key revoked on the hub is reported as such, not as "the hub refuses minting"', async (t) => {
  const f = await brokerFixture(t, { keyDays: 3 });
  const key = f.broker.apiKey('ws')!;
  const hub = new HubClient(f.sim.url, { timeoutMs: 2_000, retries: 0, backoff: { initialMs: 10, maxMs: 10 } });
  await hub.deleteToken('ws', key.key, key.tokenId!);
  const record = f.store.getWorkspace('ws')!;
  const result = await f.rotator.rotate(record, true);
  t.equal(result.outcome, 'key_rejected');
  t.match(result.message, /revoked or expired on the hub/);
  t.equal(f.store.status(record.id).rotationState, 'ok', 'not "needs you" for minting');
  t.notOk(f.store.status(record.id).capabilities.mint, 'nothing learned about minting');
  await f.broker.renew('ws', true);
  t.match(f.broker.slot('ws')!.lastError?.message, /revoked or expired on the hub/);
});

t.test('a needs-user workspace recovers by itself when the hub starts to allow minting', async (t) => {
  const f = await brokerFixture(t, { keyDays: 3 });
  await f.simClient.settings({ mintRefusedStatus: 405 });
  t.equal(await f.rotate(), 'needs_user');
  await f.simClient.settings({ mintRefusedStatus: null });
  f.clock.advance(DAY + 1);
  await f.sweep();
  const id = f.store.getWorkspace('ws')!.id;
  t.equal(f.store.status(id).rotationState, 'ok');
  t.not(f.broker.apiKey('ws')!.name, null, 'uses a key of its own now');
});

t.test('set-key after "needs you" puts the state back to ok', async (t) => {
  const f = await brokerFixture(t, { keyDays: 3 });
  await f.simClient.settings({ allowMintWithApiKey: false });
  t.equal(await f.rotate(), 'needs_user');
  const id = f.store.getWorkspace('ws')!.id;
  const fresh = await f.simClient.createKey('ws', { expiresDays: 30 });
  f.store.replaceActiveKey(id, { tokenId: fresh.id, key: fresh.token, expiresAt: Date.parse(fresh.expiry) });
  t.equal(f.store.status(id).rotationState, 'ok');
  const again = f.restart();
  t.equal(again.broker.apiKey('ws')?.key, fresh.token);
});

t.test('the daily warning starts 7 days out and repeats once a day', async (t) => {
  const f = await brokerFixture(t, { keyDays: 10, rotateBeforeDays: 12 });
  await f.simClient.settings({ allowMintWithApiKey: false });
  await f.rotate();
  const warnings = () => f.logs.filter((l) => /cannot be rotated automatically/.test(l)).length;
  const first = warnings();
  await f.sweep();
  t.equal(warnings(), first, '10 days out: no daily warning yet');
  f.clock.advance(3 * DAY + 1);
  await f.sweep();
  t.equal(warnings(), first + 1, '7 days out: warned');
  await f.sweep();
  t.equal(warnings(), first + 1, 'not again the same day');
  f.clock.advance(DAY);
  await f.sweep();
  t.ok(warnings() >= first + 2, 'next day: again');
});

t.test('a pending key the hub refuses is dropped, the active one kept', async (t) => {
  const f = await brokerFixture(t, { keyDays: 30 });
  const id = f.store.getWorkspace('ws')!.id;
  f.store.insertPendingKey(id, { tokenId: 'bogus', key: 'not-a-key', expiresAt: f.clock.now() + DAY }, 'x');
  const restarted = f.restart();
  t.equal(await restarted.rotate(), 'recovered');
  await assertSettled(t, restarted);
});

// ---- crash at every step, with a token list spanning two workspaces --------------------------

for (const step of STEPS) {
  t.test(`a crash right after "${step}", the list spanning two workspaces: finished by the next start`, async (t) => {
    const { f, violations } = await checkedFixture(t, {
      keyDays: 3,
      firstKeyMinted: true,
      workspaces: ['ws', 'other'],
      crashAfter: step,
    });
    await f.simClient.settings({ listSpansWorkspaces: true });
    // A key of ours in the other workspace, minted under the same install prefix but not for "ws":
    // clean-up of "ws" must not touch it even though the list shows it.
    const otherId = f.store.getWorkspace('other')!.id;
    const otherKey = f.store.activeApiKey(otherId)!;
    t.equal(await f.rotate('ws'), 'failed', 'the first run dies at the step');
    const restarted = f.restart(async (s, ws) => {
      for (const v of await invariantViolations(restarted, ws)) violations.push(`recovery, after "${s}": ${v}`);
    });
    await restarted.sweep();
    f.clock.advance(2 * MINUTE); // past the late-mint window, so the minting mark can be settled
    await restarted.sweep();
    t.same(violations, [], 'invariants held at every step, before and after the crash');
    await assertSettled(t, restarted);
    t.ok(restarted.broker.apiKey('ws')!.expiresAt! - f.clock.now() > 20 * DAY, 'rotated to a fresh key');
    // The other workspace was due too and rotated on its own; ws's clean-up never touched its keys.
    await assertSettled(t, restarted, 'other');
    t.not(restarted.broker.apiKey('other')!.key, otherKey.key, 'the other workspace rotated by itself');
  });
}

t.test('clean-up never revokes keys of other installations or of other workspaces', async (t) => {
  const f = await brokerFixture(t, { keyDays: 3, firstKeyMinted: true, workspaces: ['ws', 'other'] });
  await f.simClient.settings({ listSpansWorkspaces: true });
  const ws = f.store.getWorkspace('ws')!;
  const prefix = f.rotator.prefix;
  // What a list spanning workspaces may show: a key of another installation, one of ours for the
  // other workspace, and one of ours for this workspace that we do not hold (an orphan).
  const foreign = await f.simClient.createKey('ws', { name: `eodh-credd otherhost 0badc0de ws 2026-01-01T00:00:00Z` });
  const otherWs = await f.simClient.createKey('other', { name: `${prefix} other 2026-01-01T00:00:00Z` });
  const orphan = await f.simClient.createKey('ws', { name: `${prefix} ws 2026-01-01T00:00:00Z` });
  f.store.markMinting(ws.id, f.clock.now());
  const restarted = f.restart();
  t.equal(await restarted.rotate(), 'waiting', 'not before the hub could have finished a late mint');
  f.clock.advance(2 * MINUTE);
  await restarted.rotate();
  const revoked = await revokedIds(f);
  t.ok(revoked.has(orphan.id), 'our orphan for this workspace is revoked');
  t.notOk(revoked.has(foreign.id), "another installation's key is not");
  t.notOk(revoked.has(otherWs.id), "our key of another workspace is not (its record's workspace differs)");
  t.equal(f.store.status(ws.id).mintingSince, null);
});

t.test('a mint the hub finishes after the client gave up is found and revoked later', async (t) => {
  const f = await brokerFixture(t, { keyDays: 3, hubTimeoutMs: 200, lateMintMs: 30 * MINUTE });
  await f.simClient.settings({ mintDelayMs: 600 });
  const before = await liveTokens(f);
  t.equal(await f.rotate(), 'failed', 'no answer within the timeout');
  const id = f.store.getWorkspace('ws')!.id;
  t.not(f.store.status(id).mintingSince, null, 'the mark stays');
  await f.simClient.settings({ mintDelayMs: 0 });
  // The hub creates the key only after the client gave up; wait for it to appear.
  while ((await liveTokens(f)).length === before.length) await new Promise((r) => setImmediate(r));
  f.clock.advance(10 * MINUTE);
  t.equal(await f.rotate(), 'waiting', 'a list taken within the late-mint window does not clear the mark');
  t.not(f.store.status(id).mintingSince, null);
  f.clock.advance(25 * MINUTE);
  await f.sweep();
  const live = await liveTokens(f);
  const held = new Set(f.store.apiKeys(id).map((k) => k.tokenId));
  t.same(
    live.filter((k) => k.name.startsWith(f.rotator.prefix) && !held.has(k.id)),
    [],
    'the late key was revoked',
  );
  t.equal(f.store.status(id).mintingSince, null);
  await assertSettled(t, f, 'ws', await pastedIds(f));
});

t.test('a hub that refuses the token list: clean-up cannot look, says so, and clears the mark', async (t) => {
  const f = await brokerFixture(t, { keyDays: 30 });
  await f.simClient.settings({ listRefusedStatus: 403 });
  const id = f.store.getWorkspace('ws')!.id;
  f.store.markMinting(id, f.clock.now());
  const restarted = f.restart();
  f.clock.advance(2 * MINUTE);
  t.equal(await restarted.rotate(), 'recovered');
  t.equal(f.store.status(id).mintingSince, null);
  t.match(f.store.status(id).capabilities, { list: { state: 'refused', status: 403 } });
  t.ok(f.logs.some((l) => /does not let this API key list keys/.test(l)));
});

t.test('a hub that refuses deletes: the old key is forgotten, no loop', async (t) => {
  const f = await brokerFixture(t, { keyDays: 3, firstKeyMinted: true });
  await f.simClient.settings({ deleteRefusedStatus: 405 });
  t.equal(await f.rotate(), 'rotated');
  const id = f.store.getWorkspace('ws')!.id;
  t.same(
    f.store.apiKeys(id).map((k) => k.state),
    ['active'],
  );
  t.match(f.store.status(id).capabilities, { delete: { state: 'refused', status: 405 } });
  await f.sweep();
  t.equal((await f.simClient.stats()).total.mintTokens, 1, 'no further rotation');
});

t.test('short granted lifetimes: rotate at about half life, at most once an hour (#11: no loops)', async (t) => {
  const f = await brokerFixture(t, { keyDays: 3, firstKeyMinted: true });
  await f.simClient.settings({ grantedKeyDays: 2 });
  t.equal(await f.rotate(), 'rotated');
  const mints = async () => (await f.simClient.stats()).total.mintTokens;
  t.equal(await mints(), 1);
  for (let i = 0; i < 10; i++) {
    f.clock.advance(30 * MINUTE);
    await f.sweep();
  }
  t.equal(await mints(), 1, 'not rotated again within 5 hours although the key has less than 7 days');
  t.ok(
    f.logs.some((l) => /rotated at about half its life/.test(l)),
    'and the log says why',
  );
  f.clock.advance(DAY - 5 * HOUR);
  await f.sweep();
  t.equal(await mints(), 2, 'rotated at half of its 2-day life');

  await f.simClient.settings({ grantedKeyDays: 0.01 }); // 14 minutes
  f.clock.advance(DAY);
  await f.sweep();
  const after = await mints();
  for (let i = 0; i < 5; i++) {
    f.clock.advance(10 * MINUTE);
    await f.sweep();
  }
  t.equal(await mints(), after, 'a 14-minute key is not rotated more than once an hour');
  t.ok(MIN_ROTATION_INTERVAL_MS >= HOUR);
});

t.test("Go's time format and text/plain errors from the hub", async (t) => {
  const f = await brokerFixture(t, { keyDays: 3 });
  await f.simClient.settings({ timeFormat: 'go', errorFormat: 'text' });
  t.equal(await f.rotate(), 'rotated');
  t.ok(f.broker.apiKey('ws')!.expiresAt! - f.clock.now() >= 29 * DAY, "expiry read from Go's format");
  const renewed = await f.broker.renew('ws', true);
  t.equal(renewed.kind, 'renewed', 's3-tokens expiration in Go format');
  await f.simClient.settings({ mintRefusedStatus: 405 });
  t.equal(await f.rotate('ws', true), 'needs_user', 'a text/plain refusal is a refusal');
});

t.test('a renewal in flight is never cut off: the old key is revoked only after it finishes (#17)', async (t) => {
  // Hold renewals made with the first key at a gate, and watch for deletes of a key in use.
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let firstKey = '';
  const inUse = new Map<string, number>();
  const revokedWhileInUse: string[] = [];
  let f: Fixture | undefined;
  const wrapHub = (hub: Hub): Hub => ({
    listTokens: (ws, key) => hub.listTokens(ws, key),
    createToken: (ws, key, r) => hub.createToken(ws, key, r),
    workspaceInfo: (ws, key) => hub.workspaceInfo(ws, key),
    async s3Credentials(ws, key, now) {
      inUse.set(key, (inUse.get(key) ?? 0) + 1);
      try {
        if (key === firstKey) await gate;
        return await hub.s3Credentials(ws, key, now);
      } finally {
        inUse.set(key, (inUse.get(key) ?? 1) - 1);
      }
    },
    async deleteToken(ws, key, id) {
      const victim = f?.store.allApiKeys().find((k) => k.tokenId === id);
      if (victim && (inUse.get(victim.key) ?? 0) > 0) revokedWhileInUse.push(id);
      return hub.deleteToken(ws, key, id);
    },
  });
  f = await brokerFixture(t, {
    keyDays: 3,
    firstKeyMinted: true,
    wrapHub,
    onStep: (step) => {
      if (step === 'promoted') release();
    },
  });
  firstKey = f.broker.apiKey('ws')!.key;
  const renewal = f.broker.renew('ws', true);
  const rotation = f.rotate();
  t.equal(await rotation, 'rotated');
  t.equal((await renewal).kind, 'renewed', 'the renewal that used the old key succeeded');
  t.same(revokedWhileInUse, [], 'no key was revoked while a renewal used it');
  t.notOk(await keyWorks(f, firstKey), 'and the old key is revoked after it');
});

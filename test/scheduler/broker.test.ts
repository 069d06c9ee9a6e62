import t from 'tap';
import type { Accounts } from '../../src/core/access.js';
import { durations, isServable } from '../../src/core/policy.js';
import { tokenDigest } from '../../src/store/client-tokens.js';
import { brokerFixture } from '../helpers/broker-fixture.js';

const { MINUTE } = durations;

t.test('a cold workspace is filled on first request; 500 concurrent requests make one hub call', async (t) => {
  const f = await brokerFixture(t);
  const answers = await Promise.all(Array.from({ length: 500 }, () => f.broker.credentials('ws')));
  t.ok(
    answers.every((a) => a !== null && a.accessKeyId === answers[0]!.accessKeyId),
    'all got the same credential',
  );
  t.equal((await f.simClient.stats()).total.s3Tokens, 1, 'single flight');
  t.equal(f.store.loadS3(f.store.getWorkspace('ws')!.id)?.accessKeyId, answers[0]!.accessKeyId, 'persisted');
});

t.test('answers from memory until the renewal point, then renews once', async (t) => {
  const f = await brokerFixture(t);
  const first = await f.broker.credentials('ws');
  f.clock.advance(20 * MINUTE);
  t.equal((await f.broker.credentials('ws'))?.accessKeyId, first?.accessKeyId, 'still fresh: no hub call');
  t.equal((await f.simClient.stats()).total.s3Tokens, 1);
  f.clock.advance(15 * MINUTE); // 35 min in: past the renewal point (27–33 min)
  const second = await f.broker.credentials('ws');
  t.not(second?.accessKeyId, first?.accessKeyId, 'renewed on the request path');
  t.ok(second!.expiresAt - f.clock.now() >= 59 * MINUTE);
  t.equal((await f.simClient.stats()).total.s3Tokens, 2);
});

t.test('the sweep renews what is due and nothing else', async (t) => {
  const f = await brokerFixture(t, { workspaces: ['a', 'b'] });
  await f.sweep();
  t.equal((await f.simClient.stats()).total.s3Tokens, 2, 'both empty: both filled');
  await f.sweep();
  t.equal((await f.simClient.stats()).total.s3Tokens, 2, 'nothing due');
  f.clock.advance(34 * MINUTE);
  await f.sweep();
  t.equal((await f.simClient.stats()).total.s3Tokens, 4, 'both due again');
});

t.test('hub down: keep serving the cached credential until the safety margin, then null; never expired', async (t) => {
  const f = await brokerFixture(t);
  const held = await f.broker.credentials('ws');
  await f.simClient.setFault('down');
  for (let minute = 1; minute <= 70; minute++) {
    f.clock.advance(MINUTE);
    await f.sweep();
    const c = await f.broker.credentials('ws');
    if (c) {
      t.equal(c.accessKeyId, held!.accessKeyId);
      if (c.expiresAt - f.clock.now() <= MINUTE) t.fail(`served with ${c.expiresAt - f.clock.now()} ms left`);
    } else if (f.clock.now() < held!.expiresAt - MINUTE) {
      t.fail(`nothing served at minute ${minute} although the credential was still good`);
    }
  }
  t.equal(await f.broker.credentials('ws'), null, 'expired: nothing');
  const slot = f.broker.slot('ws')!;
  t.equal(slot.lastError?.code, 'hub_down');
  t.equal(f.store.status(f.store.getWorkspace('ws')!.id).lastErrorCode, 'hub_down', 'status says why');
  await f.simClient.setFault('none');
  f.clock.advance(6 * MINUTE); // past any backoff
  const back = await f.broker.credentials('ws');
  t.ok(back && isServable(back, f.clock.now()), 'recovers when the hub does');
  t.equal(f.store.status(f.store.getWorkspace('ws')!.id).lastErrorCode, null, 'error cleared');
});

t.test('failures back off: requests during the backoff make no hub calls', async (t) => {
  const f = await brokerFixture(t);
  await f.broker.credentials('ws');
  f.clock.advance(40 * MINUTE);
  await f.simClient.setFault('error500');
  await Promise.all(Array.from({ length: 50 }, () => f.broker.credentials('ws')));
  const afterFirst = (await f.simClient.stats()).total.s3Tokens;
  t.equal(afterFirst, 2, 'one failed attempt');
  for (let i = 0; i < 20; i++) await f.broker.credentials('ws');
  t.equal((await f.simClient.stats()).total.s3Tokens, afterFirst, 'no stream of hub calls');
  const slot = f.broker.slot('ws')!;
  t.ok(slot.retryAt > f.clock.now(), 'backing off');
  t.ok(slot.retryAt - f.clock.now() <= 5_000, 'first backoff at most the initial delay');
  f.clock.set(slot.retryAt);
  await f.broker.credentials('ws');
  t.equal((await f.simClient.stats()).total.s3Tokens, afterFirst + 1, 'retried once the backoff passed');
  t.equal(slot.failures, 2);
});

t.test('a garbled answer keeps the last good credential', async (t) => {
  const f = await brokerFixture(t);
  const good = await f.broker.credentials('ws');
  f.clock.advance(40 * MINUTE);
  await f.simClient.setFault('garbage');
  const served = await f.broker.credentials('ws');
  t.equal(served?.accessKeyId, good?.accessKeyId);
  t.equal(f.broker.slot('ws')?.lastError?.code, 'bad_response');
  t.equal(f.store.loadS3(f.store.getWorkspace('ws')!.id)?.accessKeyId, good?.accessKeyId, 'database keeps it too');
});

t.test('a slow hub: the request waits at most requestWaitMs, then answers with what it has', async (t) => {
  const f = await brokerFixture(t, { requestWaitMs: 150, hubTimeoutMs: 2_000 });
  const good = await f.broker.credentials('ws');
  f.clock.advance(40 * MINUTE);
  await f.simClient.setFault('slow', { delayMs: 1_500 });
  const served = await f.broker.credentials('ws');
  t.equal(served?.accessKeyId, good?.accessKeyId, 'the cached credential');
  // The hub cannot answer before 1.5 s; the renewal is still waiting on it, so the answer did not.
  t.not(f.broker.slot('ws')?.inFlight, null, 'answered while the renewal was still waiting on the hub');
  await f.settle();
});

t.test('a rejected key (403 on s3-tokens) is reported and not retried in a tight loop', async (t) => {
  const f = await brokerFixture(t);
  await f.simClient.setFault('s3_forbidden');
  for (let i = 0; i < 30; i++) await f.broker.credentials('ws');
  t.equal((await f.simClient.stats()).total.s3Tokens, 1, 'one attempt, then backoff');
  t.equal(f.broker.slot('ws')?.keyRejected, true);
  t.equal(f.store.status(f.store.getWorkspace('ws')!.id).lastErrorCode, 'forbidden');
});

t.test('authenticate: constant-time match, other workspace is forbidden, unknown is unauthorized', async (t) => {
  const f = await brokerFixture(t, { workspaces: ['a', 'b'] });
  const digestOf = (name: string) => tokenDigest(f.clientTokens.get(name)!);
  t.match(f.broker.authenticate('a', digestOf('a')), { ok: true });
  t.same(f.broker.authenticate('a', digestOf('b')), { ok: false, code: 'forbidden' });
  t.same(f.broker.authenticate('a', tokenDigest('nope')), { ok: false, code: 'unauthorized' });
  t.same(f.broker.authenticate('zzz', tokenDigest('nope')), { ok: false, code: 'unauthorized' });
});

t.test('sync picks up workspaces added and removed by another connection', async (t) => {
  const f = await brokerFixture(t, { workspaces: ['a', 'b'] });
  t.equal(f.broker.workspaces().length, 2);
  f.store.removeWorkspace('b');
  f.broker.sync();
  t.same(
    f.broker.workspaces().map((s) => s.record.name),
    ['a'],
  );
  t.equal(await f.broker.credentials('b'), null);
});

t.test(
  'allowedUids (#12): granted users, members of granted groups as the accounts say now, per workspace',
  async (t) => {
    let accounts: Accounts = {
      users: [
        { name: 'alice', uid: 1001, gid: 1001 },
        { name: 'bob', uid: 1002, gid: 2000 },
        { name: 'carol', uid: 1003, gid: 1003 },
      ],
      groups: [{ name: 'eo', gid: 2000, members: ['carol'] }],
    };
    let asked = 0;
    const f = await brokerFixture(t, {
      workspaces: ['a', 'b'],
      accounts: () => {
        asked++;
        return accounts;
      },
    });
    const uids = (ws: string) => [...f.broker.allowedUids(ws)].sort();
    t.same(uids('a'), [], 'nobody else before a grant');
    t.equal(asked, 0, 'no grant: the account files are not consulted');
    const a = f.store.getWorkspace('a')!;
    f.store.grantAccess(a.id, { kind: 'user', id: 1001, name: 'alice' });
    t.same(uids('a'), [], 'not until the broker syncs with the database');
    f.broker.sync();
    t.same(uids('a'), [1001]);
    t.equal(asked, 0, 'users only: still no need for the account files');
    t.same(uids('b'), [], 'another workspace gets nothing from it');
    t.same(uids('zzz'), [], 'an unknown workspace: nobody');
    t.match(f.logs.join(''), /"audit":true.*"workspace":"a".*"allowed":\["user alice \(uid 1001\)"\]/);

    f.store.grantAccess(a.id, { kind: 'group', id: 2000, name: 'eo' });
    f.broker.sync();
    t.same(uids('a'), [1001, 1002, 1003], 'bob by primary group, carol as a listed member');
    const before = f.broker.allowedUids('a');
    t.equal(f.broker.allowedUids('a'), before, 'the same accounts: the same set, not computed again');

    // A user added to the group later gets in once the account files say so; no sync needed.
    accounts = {
      ...accounts,
      users: [...accounts.users, { name: 'dave', uid: 1004, gid: 1004 }],
      groups: [{ name: 'eo', gid: 2000, members: ['carol', 'dave'] }],
    };
    t.same(uids('a'), [1001, 1002, 1003, 1004]);

    f.store.revokeAccess(a.id, 'user', 1001);
    f.store.revokeAccess(a.id, 'group', 2000);
    f.broker.sync();
    t.same(uids('a'), [], 'withdrawn');
    t.match(f.logs.join(''), /only the daemon's own user may read it/);
  },
);

t.test('a clock that jumps backwards does not strand a workspace in backoff', async (t) => {
  const f = await brokerFixture(t);
  await f.simClient.setFault('error500', { count: 1 });
  await f.broker.credentials('ws');
  const slot = f.broker.slot('ws')!;
  t.ok(slot.retryAt > f.clock.now());
  f.clock.advance(-2 * durations.HOUR);
  await f.broker.credentials('ws');
  t.ok(slot.current, 'renewed despite the jump');
});

t.test('on start, cached credentials from the database are served immediately', async (t) => {
  const f = await brokerFixture(t);
  const first = await f.broker.credentials('ws');
  const again = f.restart();
  const served = await again.broker.credentials('ws');
  t.equal(served?.accessKeyId, first?.accessKeyId);
  t.equal((await f.simClient.stats()).total.s3Tokens, 1, 'no hub call needed');
});

import t from 'tap';
import { attentionOf, KEY_WARNING_MS, span, workspaceSnapshot } from '../../src/core/status-view.js';
import { DAY, facts, MIN, NOW } from '../helpers/workspace-facts.js';

const policy = { rotationEnabled: true, keyWarningMs: KEY_WARNING_MS };

t.test('nothing to do: no attention', async (t) => {
  t.same(attentionOf(facts(), NOW, policy), []);
});

t.test('a key added without --token-id (unknown expiry, pasted) needs no attention (#14)', async (t) => {
  t.same(attentionOf(facts({ apiKey: { tokenId: null, expiresAt: null, minted: false } }), NOW, policy), []);
});

t.test('each reason the user must act', async (t) => {
  t.match(attentionOf(facts({ apiKey: null }), NOW, policy), [/^no API key/]);
  t.match(attentionOf(facts({ keyRejected: true }), NOW, policy), [/revoked or expired on the hub.*set-key ws/]);
  t.match(attentionOf(facts({ lastError: { code: 'unauthorized', message: 'x', at: NOW } }), NOW, policy), [
    /revoked or expired on the hub/,
  ]);
  const needsUser = facts({
    rotation: {
      state: 'needs_user',
      note: 'rotation needs you: x',
      dueAt: null,
      recovering: false,
      lastError: null,
      retryAt: null,
    },
  });
  t.same(attentionOf(needsUser, NOW, policy), ['rotation needs you: x'], 'at once, whatever the days left');
  t.match(
    attentionOf({ ...needsUser, apiKey: { tokenId: 't', expiresAt: NOW + 5 * DAY, minted: false } }, NOW, policy),
    [/expires in 5 days and cannot be rotated automatically/, /rotation needs you/],
  );
  t.match(attentionOf(facts({ s3: null }), NOW, policy), ['no valid S3 credential']);
  t.match(
    attentionOf(facts({ apiKey: { tokenId: 't', expiresAt: NOW + 2 * DAY, minted: false } }), NOW, {
      ...policy,
      rotationEnabled: false,
    }),
    [/rotation is off/],
  );
  t.match(attentionOf(facts({ apiKey: { tokenId: 't', expiresAt: NOW - 1, minted: true } }), NOW, policy), [
    /expired at/,
  ]);
});

t.test('a day of nothing but failures is reported; a shorter run is not', async (t) => {
  const lastError = { code: 'hub_down', message: 'POST …/s3-tokens 500: the hub reported a server error', at: NOW };
  t.same(attentionOf(facts({ failingSince: NOW - 23 * 60 * MIN, lastError }), NOW, policy), []);
  t.match(attentionOf(facts({ failingSince: NOW - DAY, lastError }), NOW, policy), [
    /the hub has failed every renewal for this workspace since 2025-02-17T12:00:00.000Z \(last: .*500/,
  ]);
});

t.test('the snapshot: capabilities, storage, origin, rotation text', async (t) => {
  const snap = workspaceSnapshot(
    facts({
      capabilities: { list: { state: 'refused', status: 405, at: NOW }, mint: { state: 'allowed', at: NOW } },
      storage: { bucket: 'workspaces-eodhp', prefix: 'ws/' },
    }),
    NOW,
    policy,
  );
  t.match(snap, {
    workspace: 'ws',
    apiKeyOrigin: 'minted',
    s3AccessKeyIdEnd: 'ABCD',
    capabilities: { list: 'refused (405)', mint: 'allowed', delete: 'not yet known' },
    bucket: 'workspaces-eodhp',
    prefix: 'ws/',
    rotationText: 'in 13d',
    attention: [],
  });
  t.equal(workspaceSnapshot(facts(), NOW, { ...policy, rotationEnabled: false }).rotationText, 'off');
});

t.test('the snapshot: who besides the daemon may read the workspace (#12); nobody is no attention', async (t) => {
  t.same(workspaceSnapshot(facts(), NOW, policy).allowed, []);
  const access = [
    { kind: 'user', id: 1001, name: 'alice' },
    { kind: 'group', id: 2000, name: null },
  ] as const;
  const snap = workspaceSnapshot(facts({ access }), NOW, policy);
  t.same(snap.allowed, access);
  t.same(snap.attention, []);
});

t.test('spans', async (t) => {
  t.equal(span(45_000), '45 s');
  t.equal(span(24 * MIN), '24 min');
  t.equal(span(125 * MIN), '2 h 5 min');
  t.equal(span(120 * MIN), '2 h');
  t.equal(span(3 * DAY + 5 * MIN), '3 d');
  t.equal(span(-1), '0 s');
});

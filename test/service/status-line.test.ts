import t from 'tap';
import type { WorkspaceSnapshot } from '../../src/scheduler/broker.js';
import { attentionOf, span, statusLine } from '../../src/service/status-line.js';

const NOW = Date.parse('2025-02-18T12:00:00Z');
const at = (ms: number) => new Date(NOW + ms).toISOString();
const MIN = 60_000;
const DAY = 86_400_000;
const options = { keyWarningMs: 3 * DAY };

function ws(name: string, over: Partial<WorkspaceSnapshot> = {}): WorkspaceSnapshot {
  return {
    workspace: name,
    hubUrl: 'https://hub.example',
    apiKeyTokenId: 'tok-1',
    apiKeyExpiresAt: at(20 * DAY),
    s3AccessKeyIdEnd: 'ABCD',
    s3ExpiresAt: at(55 * MIN),
    nextRenewalAt: at(25 * MIN),
    failures: 0,
    lastError: null,
    keyRejected: false,
    rotation: { needsUser: false, recovering: false, lastError: null, retryAt: null },
    ...over,
  };
}

t.test('the line systemctl status shows', async (t) => {
  t.equal(
    statusLine([ws('a'), ws('b', { nextRenewalAt: at(24 * MIN) }), ws('c', { keyRejected: true })], NOW, options),
    '3 workspaces, next renewal in 24 min, 1 needs attention',
  );
  t.equal(statusLine([ws('a')], NOW, options), '1 workspace, next renewal in 25 min');
  t.equal(
    statusLine([ws('a', { nextRenewalAt: at(-5_000) }), ws('b', { s3ExpiresAt: null })], NOW, options),
    '2 workspaces, renewal due now, 1 needs attention',
  );
  t.equal(
    statusLine([ws('a', { nextRenewalAt: null, apiKeyTokenId: null })], NOW, options),
    '1 workspace, 1 needs attention',
  );
  t.match(statusLine([], NOW, options), /^no workspaces/);
});

t.test('what needs attention', async (t) => {
  t.equal(attentionOf(ws('a'), NOW, options), null);
  t.equal(attentionOf(ws('a', { keyRejected: true }), NOW, options), 'the hub rejects the API key');
  t.equal(attentionOf(ws('a', { apiKeyTokenId: null }), NOW, options), 'no API key');
  t.equal(
    attentionOf(
      ws('a', { rotation: { needsUser: true, recovering: false, lastError: null, retryAt: null } }),
      NOW,
      options,
    ),
    'API key rotation needs the user',
  );
  t.equal(attentionOf(ws('a', { apiKeyExpiresAt: at(2 * DAY) }), NOW, options), 'API key expires soon');
  t.equal(
    attentionOf(ws('a', { apiKeyExpiresAt: null }), NOW, options),
    null,
    'unknown key expiry is not a warning by itself',
  );
  t.equal(attentionOf(ws('a', { s3ExpiresAt: at(30_000) }), NOW, options), 'no valid S3 credential');
  t.equal(
    attentionOf(ws('a', { failures: 2 }), NOW, options),
    null,
    "a failure while a credential still serves is not yet the user's problem",
  );
});

t.test('spans', async (t) => {
  t.equal(span(45_000), '45 s');
  t.equal(span(24 * MIN), '24 min');
  t.equal(span(125 * MIN), '2 h 5 min');
  t.equal(span(120 * MIN), '2 h');
  t.equal(span(3 * DAY + 5 * MIN), '3 d');
  t.equal(span(-1), '0 s');
});

import t from 'tap';
import { KEY_WARNING_MS, type WorkspaceFacts, workspaceSnapshot } from '../../src/core/status-view.js';
import { statusLine } from '../../src/service/status-line.js';

const NOW = Date.parse('2025-02-18T12:00:00Z');
const MIN = 60_000;
const DAY = 86_400_000;

function ws(name: string, over: Partial<WorkspaceFacts> = {}) {
  const facts: WorkspaceFacts = {
    workspace: name,
    hubUrl: 'https://hub.example',
    apiKey: { tokenId: 'tok-1', expiresAt: NOW + 20 * DAY, minted: true },
    s3: { accessKeyId: 'ASIAEXAMPLEABCD', issuedAt: NOW - 5 * MIN, expiresAt: NOW + 55 * MIN },
    lastRenewalAt: NOW - 5 * MIN,
    nextRenewalAt: NOW + 25 * MIN,
    lastError: null,
    failingSince: null,
    keyRejected: false,
    rotation: { state: 'ok', note: null, dueAt: NOW + 13 * DAY, recovering: false, lastError: null, retryAt: null },
    capabilities: {},
    storage: { bucket: null, prefix: null },
    ...over,
  };
  return workspaceSnapshot(facts, NOW, { rotationEnabled: true, keyWarningMs: KEY_WARNING_MS });
}

t.test('the line systemctl status shows', async (t) => {
  t.equal(
    statusLine([ws('a'), ws('b', { nextRenewalAt: NOW + 24 * MIN }), ws('c', { keyRejected: true })], NOW),
    '3 workspaces, next renewal in 24 min, 1 needs attention',
  );
  t.equal(statusLine([ws('a')], NOW), '1 workspace, next renewal in 25 min');
  t.equal(
    statusLine([ws('a', { nextRenewalAt: NOW - 5_000 }), ws('b', { s3: null })], NOW),
    '2 workspaces, renewal due now, 1 needs attention',
  );
  t.equal(statusLine([ws('a', { nextRenewalAt: null, apiKey: null })], NOW), '1 workspace, 1 needs attention');
  t.match(statusLine([], NOW), /^no workspaces/);
});

t.test('the same rule as `status`: a key added without --token-id is not "needs attention" (#14)', async (t) => {
  t.equal(
    statusLine([ws('a', { apiKey: { tokenId: null, expiresAt: null, minted: false } })], NOW),
    '1 workspace, next renewal in 25 min',
  );
});

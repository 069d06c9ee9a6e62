/** A healthy workspace's facts at NOW, for the status-view and status-line tests; override what a case needs. */
import type { WorkspaceFacts } from '../../src/core/status-view.js';

export const NOW = Date.parse('2025-02-18T12:00:00Z');
export const MIN = 60_000;
export const DAY = 86_400_000;

export function facts(over: Partial<WorkspaceFacts> = {}): WorkspaceFacts {
  return {
    workspace: 'ws',
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
    hubClockOffsetMs: null,
    access: [],
    ...over,
  };
}

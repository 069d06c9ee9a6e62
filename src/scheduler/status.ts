/**
 * Gathers the facts the status view is computed from (src/core/status-view.ts): the database, plus
 * the broker's and the rotator's live state when the daemon runs. The daemon and the CLI both
 * build their rows here, so `status`, the systemd status line and the metrics share one rule.
 */
import { durations } from '../core/policy.js';
import type { WorkspaceFacts } from '../core/status-view.js';
import type { Store, WorkspaceRecord } from '../store/store.js';
import type { RenewalView } from './broker.js';
import { keyDueAt, type RotationView } from './rotation.js';

export interface LiveState {
  readonly renewal?: RenewalView | undefined;
  readonly rotation?: RotationView | undefined;
}

export interface FactsPolicy {
  readonly rotationEnabled: boolean;
  readonly rotateBeforeDays: number;
}

/** One workspace's facts; secrets are read only to know the S3 credential's expiry when the daemon is not running. */
export function workspaceFacts(
  store: Store,
  record: WorkspaceRecord,
  live: LiveState,
  policy: FactsPolicy,
): WorkspaceFacts {
  const status = store.status(record.id);
  const renewal = live.renewal;
  const key = renewal ? renewal.apiKey : store.activeApiKey(record.id);
  const s3 = renewal ? renewal.current : store.loadS3(record.id);
  const rotateBeforeMs = policy.rotateBeforeDays * durations.DAY;
  const dueAt =
    key && policy.rotationEnabled && status.rotationState !== 'needs_user' ? keyDueAt(key, rotateBeforeMs).at : null;
  const lastError = renewal?.lastError
    ? renewal.lastError
    : status.lastErrorCode
      ? { code: status.lastErrorCode, message: status.lastErrorMessage ?? '', at: status.lastErrorAt }
      : null;
  return {
    workspace: record.name,
    hubUrl: record.hubUrl,
    apiKey: key ? { tokenId: key.tokenId, expiresAt: key.expiresAt, minted: key.name !== null } : null,
    s3: s3 ? { accessKeyId: s3.accessKeyId, issuedAt: s3.issuedAt, expiresAt: s3.expiresAt } : null,
    lastRenewalAt: status.lastRenewalAt,
    nextRenewalAt: renewal ? renewal.nextRenewalAt : null,
    lastError,
    failingSince: status.failingSince,
    keyRejected: renewal?.keyRejected ?? false,
    rotation: {
      state: status.rotationState,
      note: status.rotationNote,
      dueAt,
      recovering: live.rotation?.recovering ?? false,
      lastError: live.rotation?.lastError ?? null,
      retryAt: live.rotation?.retryAt ?? null,
    },
    capabilities: status.capabilities,
    storage: { bucket: record.s3Bucket, prefix: record.s3Prefix },
    hubClockOffsetMs: renewal?.hubClockOffsetMs ?? null,
    access: store.access(record.id),
  };
}

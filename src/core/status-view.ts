/**
 * The status of a workspace as people see it — in `eodh-credd status`, the systemd status line
 * and the metrics — and the one rule for "needs attention" (#14). Pure: facts and time in, view out.
 *
 * Something needs attention only when the user has to act: no key, a key the hub no longer takes,
 * rotation that cannot happen without them, a hub that has failed for a day, nothing to serve. A
 * key added without --token-id is not one of them (it is rotated within a day).
 */
import type { Grant } from './access.js';
import { type Capabilities, describeCapability } from './hub-facts.js';
import { daysLeft, durations, isServable } from './policy.js';

/** Everything known about one workspace, from the database and (when it runs) the daemon. */
export interface WorkspaceFacts {
  readonly workspace: string;
  readonly hubUrl: string;
  readonly apiKey: {
    readonly tokenId: string | null;
    readonly expiresAt: number | null;
    /** Minted by this installation (else pasted by the user). */
    readonly minted: boolean;
  } | null;
  readonly s3: { readonly accessKeyId: string; readonly issuedAt: number; readonly expiresAt: number } | null;
  readonly lastRenewalAt: number | null;
  /** From the daemon; null when it does not run. */
  readonly nextRenewalAt: number | null;
  readonly lastError: { readonly code: string; readonly message: string; readonly at: number | null } | null;
  /** Start of the current run of failed renewals. */
  readonly failingSince: number | null;
  /** The hub refused the key on the last renewal (401/403). */
  readonly keyRejected: boolean;
  readonly rotation: {
    readonly state: 'ok' | 'needs_user';
    readonly note: string | null;
    /** When the daemon will rotate (null: off, unknown or needs the user). */
    readonly dueAt: number | null;
    readonly recovering: boolean;
    readonly lastError: string | null;
    readonly retryAt: number | null;
  };
  readonly capabilities: Capabilities;
  readonly storage: { readonly bucket: string | null; readonly prefix: string | null };
  /** The hub's clock minus ours, as the daemon estimates it from the hub's Date headers (null: unknown). */
  readonly hubClockOffsetMs: number | null;
  /** Users and groups besides the daemon's own allowed to read the workspace (#12). */
  readonly access: readonly Grant[];
}

/** From this close to expiry a key that cannot be rotated is reminded daily and needs attention. */
export const KEY_WARNING_MS = 7 * durations.DAY;

export interface ViewPolicy {
  readonly rotationEnabled: boolean;
  /** From this close to expiry a key that cannot be rotated is shown in red and reminded daily. */
  readonly keyWarningMs: number;
}

/** What `status --json` prints and the admin route returns for one workspace. */
export interface WorkspaceSnapshot {
  readonly workspace: string;
  readonly hub: string;
  readonly apiKeyTokenId: string | null;
  readonly apiKeyExpiresAt: string | null;
  readonly apiKeyDaysLeft: number | null;
  /** "minted" by this installation or "pasted" by the user. */
  readonly apiKeyOrigin: 'minted' | 'pasted' | null;
  readonly s3AccessKeyIdEnd: string | null;
  readonly s3ExpiresAt: string | null;
  readonly s3Valid: boolean;
  readonly lastRenewalAt: string | null;
  readonly nextRenewalAt: string | null;
  readonly lastError: string | null;
  readonly failingSince: string | null;
  readonly keyRejected: boolean;
  /** "ok" or "needs_user", as stored. */
  readonly rotation: 'ok' | 'needs_user';
  readonly nextRotationAt: string | null;
  /** Rotation in words: "in 23d", "needs you", "retrying: …", "recovering", "off", "due now". */
  readonly rotationText: string;
  readonly capabilities: { readonly list: string; readonly mint: string; readonly delete: string };
  readonly bucket: string | null;
  readonly prefix: string | null;
  /** Why the user must act; empty when nothing is needed. */
  readonly attention: readonly string[];
  /** The hub's clock minus ours (ms), from the daemon (null when unknown or the daemon is down). */
  readonly hubClockOffsetMs: number | null;
  /** Users and groups besides the daemon's own allowed to read the workspace (#12); empty: nobody else. */
  readonly allowed: readonly Grant[];
}

const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : null);

/** The one rule: what the user has to do about this workspace, if anything. */
export function attentionOf(f: WorkspaceFacts, now: number, policy: ViewPolicy): string[] {
  const out: string[] = [];
  const setKey = `create a key in the EODH web UI and run "eodh-credd workspace set-key ${f.workspace}"`;
  if (!f.apiKey) out.push(`no API key: ${setKey}`);
  if (f.keyRejected || f.lastError?.code === 'unauthorized' || f.lastError?.code === 'forbidden') {
    out.push(`the API key was revoked or expired on the hub: ${setKey}`);
  }
  const expiresAt = f.apiKey?.expiresAt ?? null;
  if (expiresAt !== null && expiresAt <= now) out.push(`the API key expired at ${iso(expiresAt)}: ${setKey}`);
  if (f.rotation.state === 'needs_user') {
    if (expiresAt !== null && expiresAt > now && expiresAt - now < policy.keyWarningMs) {
      out.push(`the API key expires in ${daysLeft(expiresAt, now)} days and cannot be rotated automatically`);
    }
    out.push(f.rotation.note ?? `API key rotation needs you: ${setKey}`);
  } else if (
    !policy.rotationEnabled &&
    expiresAt !== null &&
    expiresAt > now &&
    expiresAt - now < policy.keyWarningMs
  ) {
    out.push(`the API key expires in ${daysLeft(expiresAt, now)} days and rotation is off: ${setKey}`);
  }
  if (f.failingSince !== null && now - f.failingSince >= durations.DAY) {
    const last = f.lastError ? ` (last: ${f.lastError.message})` : '';
    out.push(`the hub has failed every renewal for this workspace since ${iso(f.failingSince)}${last}`);
  }
  if (!f.s3 || !isServable(f.s3, now)) out.push('no valid S3 credential');
  return [...new Set(out)];
}

/** "in 3h12m", "5m ago", "in 22d": a time relative to now, as status shows it. */
export function relativeText(at: number, now: number): string {
  const ms = at - now;
  const abs = Math.abs(ms);
  const text =
    abs >= durations.DAY
      ? `${Math.floor(abs / durations.DAY)}d`
      : abs >= durations.HOUR
        ? `${Math.floor(abs / durations.HOUR)}h${Math.floor((abs % durations.HOUR) / durations.MINUTE)}m`
        : `${Math.floor(abs / durations.MINUTE)}m`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

export function rotationText(f: WorkspaceFacts, now: number, policy: ViewPolicy): string {
  if (f.rotation.state === 'needs_user') return 'needs you';
  if (f.rotation.recovering) return 'recovering';
  if (f.rotation.lastError) return `retrying: ${f.rotation.lastError}`;
  if (!policy.rotationEnabled) return 'off';
  if (f.rotation.dueAt === null) return '-';
  return f.rotation.dueAt <= now ? 'due now' : relativeText(f.rotation.dueAt, now);
}

export function workspaceSnapshot(f: WorkspaceFacts, now: number, policy: ViewPolicy): WorkspaceSnapshot {
  const expiresAt = f.apiKey?.expiresAt ?? null;
  return {
    workspace: f.workspace,
    hub: f.hubUrl,
    apiKeyTokenId: f.apiKey?.tokenId ?? null,
    apiKeyExpiresAt: iso(expiresAt),
    apiKeyDaysLeft: expiresAt === null ? null : daysLeft(expiresAt, now),
    apiKeyOrigin: f.apiKey ? (f.apiKey.minted ? 'minted' : 'pasted') : null,
    s3AccessKeyIdEnd: f.s3 ? f.s3.accessKeyId.slice(-4) : null,
    s3ExpiresAt: iso(f.s3?.expiresAt),
    s3Valid: f.s3 ? isServable(f.s3, now) : false,
    lastRenewalAt: iso(f.lastRenewalAt),
    nextRenewalAt: iso(f.nextRenewalAt),
    lastError: f.lastError ? `${f.lastError.code}: ${f.lastError.message}` : null,
    failingSince: iso(f.failingSince),
    keyRejected: f.keyRejected,
    rotation: f.rotation.state,
    nextRotationAt: policy.rotationEnabled && f.rotation.state !== 'needs_user' ? iso(f.rotation.dueAt) : null,
    rotationText: rotationText(f, now, policy),
    capabilities: {
      list: describeCapability(f.capabilities.list),
      mint: describeCapability(f.capabilities.mint),
      delete: describeCapability(f.capabilities.delete),
    },
    bucket: f.storage.bucket,
    prefix: f.storage.prefix,
    attention: attentionOf(f, now, policy),
    hubClockOffsetMs: f.hubClockOffsetMs,
    allowed: f.access.map((g) => ({ kind: g.kind, id: g.id, name: g.name })),
  };
}

/** "24 min", "45 s", "2 h 5 min", "3 d". */
export function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return min % 60 ? `${h} h ${min % 60} min` : `${h} h`;
  return `${Math.floor(h / 24)} d`;
}

/**
 * The one-line summary systemd shows in `systemctl status` (STATUS=), e.g.
 * "3 workspaces, next renewal in 24 min, 1 needs attention". Pure: snapshot and time in, text out.
 */
import { durations } from '../core/policy.js';
import type { WorkspaceSnapshot } from '../scheduler/broker.js';

export interface StatusLineOptions {
  /** An API key this close to expiry needs the user (rotation may be impossible on the hub). */
  readonly keyWarningMs: number;
}

/** Below this, an S3 credential is as good as gone for a client. */
const USABLE_MS = durations.MINUTE;

/** Why a workspace needs the user, or null. */
export function attentionOf(s: WorkspaceSnapshot, now: number, options: StatusLineOptions): string | null {
  if (s.keyRejected) return 'the hub rejects the API key';
  if (s.apiKeyTokenId === null) return 'no API key';
  if (s.rotation?.needsUser) return 'API key rotation needs the user';
  if (s.apiKeyExpiresAt !== null && Date.parse(s.apiKeyExpiresAt) - now < options.keyWarningMs)
    return 'API key expires soon';
  if (s.s3ExpiresAt === null || Date.parse(s.s3ExpiresAt) - now <= USABLE_MS) return 'no valid S3 credential';
  return null;
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

export function statusLine(snapshot: readonly WorkspaceSnapshot[], now: number, options: StatusLineOptions): string {
  if (snapshot.length === 0) return 'no workspaces (add one with "eodh-credd workspace add")';
  const parts = [`${snapshot.length} workspace${snapshot.length === 1 ? '' : 's'}`];
  const next = Math.min(...snapshot.map((s) => (s.nextRenewalAt ? Date.parse(s.nextRenewalAt) : Infinity)));
  if (Number.isFinite(next)) parts.push(next <= now ? 'renewal due now' : `next renewal in ${span(next - now)}`);
  const attention = snapshot.filter((s) => attentionOf(s, now, options) !== null).length;
  if (attention > 0) parts.push(`${attention} need${attention === 1 ? 's' : ''} attention`);
  return parts.join(', ');
}

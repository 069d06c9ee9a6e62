/**
 * The one-line summary systemd shows in `systemctl status` (STATUS=), e.g.
 * "3 workspaces, next renewal in 24 min, 1 needs attention". Pure: snapshots and time in, text out;
 * "needs attention" is the rule of src/core/status-view.ts, the same as `eodh-credd status`.
 */
import { span, type WorkspaceSnapshot } from '../core/status-view.js';

export { span } from '../core/status-view.js';

export function statusLine(snapshot: readonly WorkspaceSnapshot[], now: number): string {
  if (snapshot.length === 0) return 'no workspaces (add one with "eodh-credd workspace add")';
  const parts = [`${snapshot.length} workspace${snapshot.length === 1 ? '' : 's'}`];
  const next = Math.min(...snapshot.map((s) => (s.nextRenewalAt ? Date.parse(s.nextRenewalAt) : Infinity)));
  if (Number.isFinite(next)) parts.push(next <= now ? 'renewal due now' : `next renewal in ${span(next - now)}`);
  const attention = snapshot.filter((s) => s.attention.length > 0).length;
  if (attention > 0) parts.push(`${attention} need${attention === 1 ? 's' : ''} attention`);
  return parts.join(', ');
}

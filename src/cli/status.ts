/**
 * `eodh-credd status [--json]`: whether the daemon runs, then one row per workspace from the
 * database (works with the daemon down), with the daemon's view (next renewal, rotation in
 * progress) when it runs, asked over its Unix socket. Colour on a terminal. Exits 3 when the
 * daemon is not running (as `systemctl status` does), else 2 when something needs the user.
 */
import { parseArgs } from 'node:util';
import type { Config } from '../config/load.js';
import { describeOffset, offsetWorthShowing } from '../core/clock-sense.js';
import { EXIT } from '../core/errors.js';
import { daysLeft, durations, isServable, rotationDueAt } from '../core/policy.js';
import type { WorkspaceSnapshot } from '../scheduler/broker.js';
import { type CliContext, configOf, openStore, print } from './context.js';
import { adminToken, callDaemon, daemonRunning, runtimeInfo } from './daemon-client.js';

export interface StatusRow {
  workspace: string;
  hub: string;
  apiKeyExpiresAt: string | null;
  apiKeyDaysLeft: number | null;
  s3ExpiresAt: string | null;
  s3Valid: boolean;
  lastRenewalAt: string | null;
  nextRenewalAt: string | null;
  lastError: string | null;
  rotation: string;
  /** When the daemon will rotate the API key (null when rotation is off or needs the user). */
  nextRotationAt: string | null;
  /** Rotation in words: "in 23d", "needs you", "retrying: …", "recovering", "off". */
  rotationText: string;
  attention: string[];
  /** The hub's clock minus ours as the daemon estimates it (null when unknown or the daemon is down). */
  hubClockOffsetMs?: number | null;
}

const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : null);

/** Whether the daemon answers on its socket, and its view of the workspaces when it does. */
export interface DaemonView {
  readonly running: boolean;
  readonly pid: number | null;
  readonly url: string | null;
  readonly live: WorkspaceSnapshot[];
}

export async function daemonView(config: Config, timeoutMs = 3_000): Promise<DaemonView> {
  if (!(await daemonRunning(config))) return { running: false, pid: null, url: null, live: [] };
  const info = runtimeInfo(config);
  let live: WorkspaceSnapshot[] = [];
  try {
    const answer = await callDaemon(config, '/v1/admin/status', { token: adminToken(config), timeoutMs });
    if (answer.status === 200 && Array.isArray(answer.body)) live = answer.body as WorkspaceSnapshot[];
  } catch {
    // It answered a moment ago; the database alone still answers.
  }
  return { running: true, pid: info?.pid ?? null, url: info?.url ?? null, live };
}

export async function collectStatus(
  config: Config,
  env: CliContext['env'],
  now = Date.now(),
  view?: DaemonView,
): Promise<StatusRow[]> {
  const { live } = view ?? (await daemonView(config));
  const store = openStore(config, env);
  try {
    return store.listWorkspaces().map((w) => {
      const key = store.activeApiKey(w.id);
      const s3 = store.loadS3(w.id);
      const st = store.status(w.id);
      const snap = live.find((s) => s.workspace === w.name);
      const attention: string[] = [];
      const days = key?.expiresAt != null ? daysLeft(key.expiresAt, now) : null;
      if (!key) attention.push('no API key');
      if (
        key?.expiresAt != null &&
        key.expiresAt - now < config.rotation.rotate_before_days * durations.DAY &&
        st.rotationState === 'needs_user'
      ) {
        attention.push(`API key expires in ${days} days and cannot be rotated automatically`);
      }
      if (st.rotationState === 'needs_user' && st.rotationNote) attention.push(st.rotationNote);
      if (snap?.keyRejected || st.lastErrorCode === 'unauthorized' || st.lastErrorCode === 'forbidden') {
        attention.push('the hub rejects the API key');
      }
      const s3Valid = s3 ? isServable(s3, now) : false;
      if (!s3Valid) attention.push('no valid S3 credential');
      const rotateAt =
        key && config.rotation.enabled && st.rotationState !== 'needs_user'
          ? rotationDueAt(key, config.rotation.rotate_before_days * durations.DAY)
          : null;
      const rotationText =
        st.rotationState === 'needs_user' || snap?.rotation?.needsUser
          ? 'needs you'
          : snap?.rotation?.recovering
            ? 'recovering'
            : snap?.rotation?.lastError
              ? `retrying: ${snap.rotation.lastError}`
              : !config.rotation.enabled
                ? 'off'
                : rotateAt === null
                  ? '-'
                  : rotateAt <= now
                    ? 'due now'
                    : relative(iso(rotateAt), now);
      return {
        workspace: w.name,
        hub: w.hubUrl,
        apiKeyExpiresAt: iso(key?.expiresAt),
        apiKeyDaysLeft: days,
        s3ExpiresAt: iso(s3?.expiresAt),
        s3Valid,
        lastRenewalAt: iso(st.lastRenewalAt),
        nextRenewalAt: snap?.nextRenewalAt ?? null,
        lastError: st.lastErrorCode ? `${st.lastErrorCode}: ${st.lastErrorMessage ?? ''}` : null,
        rotation: st.rotationState,
        nextRotationAt: iso(rotateAt),
        rotationText,
        attention: [...new Set(attention)],
        hubClockOffsetMs: snap?.hubClockOffsetMs ?? null,
      };
    });
  } finally {
    store.close();
  }
}

function relative(isoTime: string | null, now: number): string {
  if (!isoTime) return '-';
  const ms = Date.parse(isoTime) - now;
  const abs = Math.abs(ms);
  const text =
    abs >= durations.DAY
      ? `${Math.floor(abs / durations.DAY)}d`
      : abs >= durations.HOUR
        ? `${Math.floor(abs / durations.HOUR)}h${Math.floor((abs % durations.HOUR) / durations.MINUTE)}m`
        : `${Math.floor(abs / durations.MINUTE)}m`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

type Colour = 'red' | 'yellow' | 'green' | 'bold' | null;
const SGR: Record<Exclude<Colour, null>, string> = { red: '31', yellow: '33', green: '32', bold: '1' };

export function renderTable(rows: StatusRow[], now: number, colour: boolean): string[] {
  const paint = (s: string, c: Colour) => (colour && c ? `\u001b[${SGR[c]}m${s}\u001b[0m` : s);
  const header = [
    'WORKSPACE',
    'HUB',
    'API KEY EXPIRES',
    'ROTATION',
    'S3 EXPIRES',
    'LAST RENEWAL',
    'NEXT RENEWAL',
    'LAST ERROR',
  ];
  // Each cell with the colour it gets on a terminal (padding is measured without the colour codes).
  const body: Array<Array<[string, Colour]>> = rows.map((r) => {
    const days = r.apiKeyDaysLeft;
    return [
      [r.workspace, r.attention.length > 0 ? 'red' : 'green'],
      [r.hub, null],
      [
        days === null ? 'unknown' : `${days} days`,
        days !== null && days < 3 ? 'red' : days !== null && days < 7 ? 'yellow' : null,
      ],
      [
        r.rotationText,
        r.rotationText === 'needs you'
          ? 'red'
          : r.rotationText.startsWith('retrying') || r.rotationText === 'recovering'
            ? 'yellow'
            : null,
      ],
      [relative(r.s3ExpiresAt, now), r.s3Valid ? null : 'red'],
      [relative(r.lastRenewalAt, now), null],
      [relative(r.nextRenewalAt, now), r.nextRenewalAt && Date.parse(r.nextRenewalAt) < now ? 'yellow' : null],
      [r.lastError ?? '-', r.lastError ? 'yellow' : null],
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]![0].length)));
  const line = (cells: Array<[string, Colour]>) =>
    cells
      .map(([text, c], i) =>
        i === cells.length - 1 ? paint(text, c) : paint(text, c) + ' '.repeat(widths[i]! - text.length),
      )
      .join('  ')
      .trimEnd();
  const out = [line(header.map((h) => [h, 'bold'])), ...body.map(line)];
  for (const r of rows) for (const a of r.attention) out.push(paint(`! ${r.workspace}: ${a}`, 'red'));
  // A clock off by more than 30 s is worth knowing (#13); expiry is already judged by the earlier clock.
  const hubsShown = new Set<string>();
  for (const r of rows) {
    const offset = r.hubClockOffsetMs ?? null;
    if (!offsetWorthShowing(offset) || hubsShown.has(r.hub)) continue;
    hubsShown.add(r.hub);
    out.push(paint(`~ ${r.hub}: ${describeOffset(offset)}; expiry is judged by the earlier of the two`, 'yellow'));
  }
  return out;
}

export async function run(ctx: CliContext): Promise<number> {
  const { values } = parseArgs({ args: ctx.args, options: { json: { type: 'boolean', default: false } } });
  const config = configOf(ctx);
  const now = Date.now();
  const view = await daemonView(config);
  const rows = await collectStatus(config, ctx.env, now, view);
  const daemonLine = view.running
    ? `Daemon: running${view.pid === null ? '' : ` (pid ${view.pid})`}${view.url === null ? '' : `, serving ${view.url}`}.`
    : 'Daemon: not running (start it with "systemctl --user start eodh-credd" or "eodh-credd serve"); the table shows what the database holds.';
  if (values.json) {
    print(ctx.stdout, JSON.stringify(rows, null, 2));
    if (!view.running) print(ctx.stderr, daemonLine);
  } else {
    print(ctx.stdout, daemonLine);
    if (rows.length === 0) print(ctx.stdout, 'No workspaces.');
    else for (const line of renderTable(rows, now, ctx.stdout.isTTY === true)) print(ctx.stdout, line);
  }
  if (!view.running) return EXIT.NOT_RUNNING;
  return rows.some((r) => r.attention.length > 0) ? EXIT.NEEDS_ATTENTION : EXIT.OK;
}

/**
 * `eodh-credd status [--json]`: whether the daemon runs, then one row per workspace from the
 * database (works with the daemon down), with the daemon's view (next renewal, rotation in
 * progress) when it runs, asked over its Unix socket. Colour on a terminal. Exits 3 when the
 * daemon is not running (as `systemctl status` does), else 2 when something needs the user.
 */
import type { Config } from '../config/load.js';
import { describeGrant } from '../core/access.js';
import { describeOffset, offsetWorthShowing } from '../core/clock-sense.js';
import { EXIT } from '../core/errors.js';
import { KEY_WARNING_MS, relativeText, type WorkspaceSnapshot, workspaceSnapshot } from '../core/status-view.js';
import { workspaceFacts } from '../scheduler/status.js';
import { type CliContext, colourFor, configOf, print } from './context.js';
import { adminToken, callDaemon, daemonRunning, runtimeInfo } from './daemon-client.js';
import { openStoreForReading } from './open-store.js';

/** One row of `status`: the view of src/core/status-view.ts, computed by the daemon when it runs. */
export type StatusRow = WorkspaceSnapshot;

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
  const store = openStoreForReading(config, env);
  try {
    const policy = { rotationEnabled: config.rotation.enabled, keyWarningMs: KEY_WARNING_MS };
    const factsPolicy = {
      rotationEnabled: config.rotation.enabled,
      rotateBeforeDays: config.rotation.rotate_before_days,
    };
    // The daemon's rows (same rule, plus what only it knows) for what it serves; the database for the rest.
    return store.listWorkspaces().map((w) => {
      const fromDaemon = live.find((s) => s.workspace === w.name);
      if (fromDaemon && Array.isArray(fromDaemon.attention)) return fromDaemon;
      return workspaceSnapshot(workspaceFacts(store, w, {}, factsPolicy), now, policy);
    });
  } finally {
    store.close();
  }
}

function relative(isoTime: string | null, now: number): string {
  return isoTime ? relativeText(Date.parse(isoTime), now) : '-';
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
  for (const r of rows) {
    const facts = [];
    if (r.bucket) facts.push(`storage s3://${r.bucket}/${r.prefix ?? ''}`);
    if (r.capabilities) {
      const c = r.capabilities;
      facts.push(`hub lets its key list: ${c.list}, mint: ${c.mint}, delete: ${c.delete}`);
    }
    if (r.apiKeyOrigin) facts.push(r.apiKeyOrigin === 'minted' ? 'key minted here' : 'key pasted');
    // A daemon from before #12 sends no `allowed`.
    const allowed = r.allowed ?? [];
    if (allowed.length > 0) facts.push(`also allowed: ${allowed.map(describeGrant).join(', ')}`);
    if (facts.length > 0) out.push(`  ${r.workspace}: ${facts.join('; ')}`);
  }
  for (const r of rows) for (const a of r.attention) out.push(paint(`! ${r.workspace}: ${a}`, 'red'));
  // A clock off by more than 30 s is worth knowing (#13); expiry is already judged by the earlier clock.
  const hubsShown = new Set<string>();
  for (const r of rows) {
    const offset = r.hubClockOffsetMs;
    if (!offsetWorthShowing(offset) || hubsShown.has(r.hub)) continue;
    hubsShown.add(r.hub);
    out.push(paint(`~ ${r.hub}: ${describeOffset(offset)}; expiry is judged by the earlier of the two`, 'yellow'));
  }
  return out;
}

export async function run(ctx: CliContext): Promise<number> {
  const config = configOf(ctx);
  const now = Date.now();
  const view = await daemonView(config);
  const rows = await collectStatus(config, ctx.env, now, view);
  const daemonLine = view.running
    ? `Daemon: running${view.pid === null ? '' : ` (pid ${view.pid})`}${view.url === null ? '' : `, serving ${view.url}`}.`
    : 'Daemon: not running (start it with "systemctl --user start eodh-credd" or "eodh-credd serve"); the table shows what the database holds.';
  if (ctx.options.json === true) {
    print(ctx.stdout, JSON.stringify(rows, null, 2));
    if (!view.running) print(ctx.stderr, daemonLine);
  } else {
    print(ctx.stdout, daemonLine);
    if (rows.length === 0) print(ctx.stdout, 'No workspaces.');
    else for (const line of renderTable(rows, now, colourFor(ctx, ctx.stdout))) print(ctx.stdout, line);
  }
  if (!view.running) return EXIT.NOT_RUNNING;
  return rows.some((r) => r.attention.length > 0) ? EXIT.NEEDS_ATTENTION : EXIT.OK;
}

/** status: the next-renewal and rotation columns, colour only on a terminal, against a real daemon. */

import type { Test } from 'tap';
import t from 'tap';
import { collectStatus, daemonView, renderTable, type StatusRow } from '../../src/cli/status.js';
import { loadConfig } from '../../src/config/load.js';
import { HubSimulatorClient, startHubSimulator } from '../../src/hub-sim/index.js';
import { waitFor } from '../helpers/daemon.js';
import { addWorkspace, installation } from '../helpers/service.js';

const NOW = Date.parse('2025-02-18T12:00:00Z');
const at = (ms: number) => new Date(NOW + ms).toISOString();
const row = (over: Partial<StatusRow> = {}): StatusRow => ({
  workspace: 'ws',
  hub: 'https://hub.example',
  apiKeyTokenId: 'tok',
  apiKeyOrigin: 'minted',
  hubClockOffsetMs: null,
  s3AccessKeyIdEnd: 'WXYZ',
  failingSince: null,
  keyRejected: false,
  capabilities: { list: 'allowed', mint: 'allowed', delete: 'not yet known' },
  bucket: null,
  prefix: null,
  apiKeyExpiresAt: at(20 * 86_400_000),
  apiKeyDaysLeft: 20,
  s3ExpiresAt: at(50 * 60_000),
  s3Valid: true,
  lastRenewalAt: at(-10 * 60_000),
  nextRenewalAt: at(24 * 60_000),
  lastError: null,
  rotation: 'ok',
  nextRotationAt: at(13 * 86_400_000),
  rotationText: 'in 13d',
  attention: [],
  allowed: [],
  ...over,
});

t.test('table: next renewal and rotation columns; colour only when asked', async (t) => {
  const plain = renderTable(
    [row(), row({ workspace: 'other', rotationText: 'needs you', attention: ['add a new key'] })],
    NOW,
    false,
  );
  t.match(
    plain[0],
    /^WORKSPACE\s+HUB\s+API KEY EXPIRES\s+ROTATION\s+S3 EXPIRES\s+LAST RENEWAL\s+NEXT RENEWAL\s+LAST ERROR$/,
  );
  t.match(plain[1], /^ws\s+https:\/\/hub\.example\s+20 days\s+in 13d\s+in 50m\s+10m ago\s+in 24m\s+-$/);
  t.match(plain[2], /needs you/);
  t.match(plain[3], /^ {2}ws: hub lets its key list: allowed, mint: allowed, delete: not yet known; key minted here$/);
  t.equal(plain.at(-1), '! other: add a new key');
  t.notMatch(plain.join('\n'), /\u001b/, 'no escape codes');
  const coloured = renderTable(
    [row(), row({ workspace: 'other', rotationText: 'needs you', attention: ['add a new key'] })],
    NOW,
    true,
  );
  t.match(coloured[1], /^\u001b\[32mws\u001b\[0m/, 'a healthy workspace in green');
  t.match(coloured[2], /\u001b\[31mneeds you\u001b\[0m/, 'rotation that needs the user in red');
  t.equal(coloured.at(-1), '\u001b[31m! other: add a new key\u001b[0m');
  // Columns line up the same with and without colour.
  const strip = (s: string) => s.replace(/\u001b\[\d+m/g, '');
  t.same(coloured.map(strip), plain);
});

t.test('table: the users and groups besides the daemon allowed on a workspace (#12)', async (t) => {
  const lines = renderTable(
    [
      row({
        allowed: [
          { kind: 'user', id: 1001, name: 'alice' },
          { kind: 'group', id: 2000, name: 'eo-team' },
        ],
      }),
      row({ workspace: 'mine' }),
    ],
    NOW,
    false,
  );
  t.match(lines.join('\n'), /^ {2}ws: .*; also allowed: user alice \(uid 1001\), group eo-team \(gid 2000\)$/m);
  t.notMatch(lines.join('\n'), /mine: .*also allowed/, 'nobody else: not mentioned');
  // A row from a daemon that predates the field.
  const { allowed: _, ...older } = row();
  t.doesNotThrow(() => renderTable([older as StatusRow], NOW, false));
});

t.test('table: a hub clock more than 30 s off is shown once per hub', async (t) => {
  const lines = renderTable(
    [
      row({ hubClockOffsetMs: 240_400 }),
      row({ workspace: 'two', hubClockOffsetMs: 240_400 }),
      row({ workspace: 'near', hub: 'https://near.example', hubClockOffsetMs: 29_000 }),
    ],
    NOW,
    false,
  );
  t.same(
    lines.filter((l) => l.startsWith('~')),
    ["~ https://hub.example: hub clock 4 min 0 s ahead of this machine's; expiry is judged by the earlier of the two"],
    'one line, for the hub that is off',
  );
  t.notMatch(lines.join('\n'), /near\.example:/, 'within 30 s: not shown');
});

/** An installation with one workspace on a fresh hub simulator, its daemon running; all stopped at the end. */
async function servedWorkspace(t: Test, simOptions: Parameters<typeof startHubSimulator>[0] = {}) {
  const sim = await startHubSimulator(simOptions);
  t.teardown(() => sim.close());
  const hub = new HubSimulatorClient(sim.url);
  const inst = installation(t);
  t.equal((await inst.cli(['init'])).code, 0);
  await addWorkspace(inst, sim.url, await hub.createKey('ws', { expiresDays: 30 }));
  const daemon = await inst.serve();
  t.teardown(async () => {
    daemon.child.kill('SIGTERM');
    await daemon.exited;
  });
  return { sim, hub, inst, daemon };
}

t.test('status against a daemon whose hub clock is 4 minutes behind', async (t) => {
  const { inst } = await servedWorkspace(t, { clockSkewMs: -240_000 });
  t.equal((await inst.cli(['refresh', 'ws'])).code, 0, 'the daemon talks to the hub');
  const r = await inst.cli(['status', '--json']);
  const [ws] = JSON.parse(r.stdout) as StatusRow[];
  t.ok(Math.abs((ws?.hubClockOffsetMs ?? 0) + 240_000) < 2_000, `offset ${ws?.hubClockOffsetMs} ms`);
  const table = await inst.cli(['status']);
  t.match(table.stdout, /hub clock 4 min 0 s behind this machine's/);
});

t.test('status --json against a running daemon: next renewal and next rotation', async (t) => {
  const { inst } = await servedWorkspace(t);
  // The first sweep schedules the next renewal: wait until the daemon says it has one.
  await waitFor(async () => {
    const live = await inst.admin('/v1/admin/status');
    return (live.body as Array<{ nextRenewalAt: string | null }>)[0]?.nextRenewalAt;
  }, 10_000);
  const r = await inst.cli(['status', '--json']);
  t.equal(r.code, 0, r.stderr);
  t.type(JSON.parse(r.stdout), Array, 'status --json prints the rows');
  // The daemon's view comes with a 3 s timeout, after which status quietly shows the database's
  // alone: on a loaded machine that decided the test. Ask it in-process with time to spare.
  const config = loadConfig({ env: inst.env });
  const [ws] = await collectStatus(config, inst.env, Date.now(), await daemonView(config, 60_000));
  t.ok(ws?.nextRenewalAt && Date.parse(ws.nextRenewalAt) > Date.now(), 'next renewal from the daemon', { ws });
  const rotateIn = Date.parse(ws?.nextRotationAt ?? '') - Date.now();
  t.ok(rotateIn > 22 * 86_400_000 && rotateIn <= 23 * 86_400_000, 'rotation 7 days before the 30-day key expires');
  t.match(ws?.rotationText, /^in 2[23]d$/);
  const table = await inst.cli(['status']);
  t.match(table.stdout, /ROTATION/);
  t.notMatch(table.stdout, /\u001b/, 'no colour through a pipe');
});

t.test('status says whether the daemon runs: exit 3 when it does not', async (t) => {
  const inst = installation(t);
  t.equal((await inst.cli(['init'])).code, 0);
  const down = await inst.cli(['status']);
  t.equal(down.code, 3, 'not running: exit 3');
  t.match(
    down.stdout,
    /^Daemon: not running \(start it with .*\); the table shows what the database holds\.\nNo workspaces\.\n$/,
  );
  const downJson = await inst.cli(['status', '--json']);
  t.equal(downJson.code, 3);
  t.same(JSON.parse(downJson.stdout), [], 'the JSON stays the list of workspaces');
  t.match(downJson.stderr, /^Daemon: not running/, 'the reason on stderr');

  const daemon = await inst.serve();
  const up = await inst.cli(['status']);
  t.equal(up.code, 0, up.stderr);
  t.match(up.stdout, `Daemon: running (pid ${daemon.child.pid}), serving ${daemon.url}.`);
  daemon.child.kill('SIGTERM');
  await daemon.exited;
  t.equal((await inst.cli(['status'])).code, 3, 'stopped: exit 3 again');
});

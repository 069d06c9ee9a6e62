/**
 * Crash tests of API-key rotation against the real built daemon: `eodh-credd serve` is killed
 * with SIGKILL inside a rotation, restarted, and must finish the rotation with exactly one active
 * key that works and no key of ours left alive on the hub.
 *
 * Each suite has its own hub simulator, running in this process so that it outlives every daemon
 * it serves, and its own installation; suites run two at a time. Each workspace starts with a
 * user key that expires in 3 days: with rotate_before_days = 7 its rotation is due at the
 * daemon's first sweep.
 *
 *  - deterministic: EODH_CREDD_FAILPOINT=rotation:<step> kills the daemon right after each step;
 *  - random: a plain daemon is killed by the test at a random moment of its first seconds, with
 *    the simulator slowing the hub calls so that kills land inside the rotation. CRASH_RUNS sets
 *    the number of runs (default 12, in two lanes), CRASH_SEED replays a sequence (it is printed):
 *      CRASH_RUNS=50 npx tap test/integration/rotation-crash.test.ts
 *  - a daemon killed while the hub is down during recovery converges once the hub answers;
 *  - no minted key is left alive on the hub when the answer to the mint is lost, or when the hub
 *    refuses the new key at verification.
 */

import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { type StartedHubSimulator, startHubSimulator } from '../../src/hub-sim/app.js';
import { HubSimulatorClient, type SimKey, type SimTokenInfo } from '../../src/hub-sim/client.js';
import type { RotationStep } from '../../src/scheduler/rotation.js';
import {
  clientToken,
  describeExit,
  type Home,
  makeHome,
  readRuntime,
  runCli,
  type ServeProcess,
  type StartedServe,
  spawnServe,
  startServe,
  waitFor,
} from '../helpers/daemon.js';

/**
 * The steps of rotating away a pasted key. "revoked" is not among them: a pasted key is forgotten at
 * promotion, never revoked (#11); revoking a replaced key of our own, and a kill right after it, is
 * covered by test/scheduler/rotation.test.ts.
 */
const STEPS: readonly RotationStep[] = ['intent', 'minted', 'persisted', 'verified', 'promoted'];
const RUNS = Number(process.env.CRASH_RUNS ?? 12);
const SEED = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
if (!Number.isSafeInteger(RUNS) || RUNS < 0)
  throw new Error(`CRASH_RUNS must be a whole number, not "${process.env.CRASH_RUNS}"`);
if (!Number.isSafeInteger(SEED)) throw new Error(`CRASH_SEED must be a whole number, not "${process.env.CRASH_SEED}"`);
/** Bounds for waits on a loaded machine; a healthy run needs a small fraction of them. */
const DEATH_WAIT_MS = 20_000;
const CONVERGE_WAIT_MS = 30_000;

const CONFIG = `
[renewal]
sweep_schedule = "* * * * * *"
backoff_initial_ms = 300
backoff_max_ms = 2000
[rotation]
rotate_before_days = 7
key_lifetime_days = 30
[hub]
timeout_ms = 2000
# A key the hub mints after an unanswered request is looked for this soon after (2.5 s).
late_answer_margin_ms = 500
`;

/** Names of the keys the daemon mints start with this (see keyNamePrefix in rotation.ts). */
const OURS = 'eodh-credd ';

// Every run starts daemons, each a second or more of CPU: allow for a slow machine.
t.setTimeout(120_000 + 25_000 * (STEPS.length + RUNS + 2));
t.jobs = 2;
t.comment(`CRASH_RUNS=${RUNS} CRASH_SEED=${SEED}`);

// ---- set-up ------------------------------------------------------------------------------

/** One suite's world: a hub simulator (its faults are global, hence one per suite) and an installation. */
interface Lab {
  readonly sim: StartedHubSimulator;
  readonly simUrl: string;
  readonly hub: HubSimulatorClient;
  readonly home: Home;
}

async function makeLab(tt: Test): Promise<Lab> {
  const sim = await startHubSimulator({});
  tt.teardown(() => sim.close());
  const home = makeHome(tt, { config: CONFIG });
  const init = await runCli(home, ['init']);
  if (init.code !== 0) throw new Error(`eodh-credd init failed (${init.code}): ${init.stderr}`);
  return { sim, simUrl: sim.url, hub: new HubSimulatorClient(sim.url), home };
}

/**
 * A user key due for rotation (3 days left), added the way a user would: key on stdin. It is added
 * with rotation off, so that the pasted key (rather than one minted at `workspace add`) is what the
 * daemon rotates at its first sweep.
 */
async function addWorkspace(lab: Lab, workspace: string, hubUrl = lab.simUrl): Promise<SimKey> {
  const key = await lab.hub.createKey(workspace, { expiresDays: 3 });
  const noRotation = `${lab.home.configFile}.add`;
  const config = readFileSync(lab.home.configFile, 'utf8').replace('[rotation]\n', '[rotation]\nenabled = false\n');
  writeFileSync(noRotation, config, { mode: 0o600 });
  const args = ['--config', noRotation, 'workspace', 'add', workspace, '--hub', hubUrl, '--token-id', key.id];
  const added = await runCli(lab.home, args, { stdin: key.token });
  if (added.code !== 0) throw new Error(`workspace add ${workspace} failed (${added.code}): ${added.stderr}`);
  return key;
}

// ---- observing ---------------------------------------------------------------------------

interface KeyRow {
  readonly state: string;
  readonly tokenId: string | null;
  readonly name: string | null;
}

interface Snapshot {
  /** api_keys rows of the workspace (the keys are sealed: ids only). */
  readonly keys: KeyRow[];
  readonly mintingSince: number | null;
  /** Every simulator token of the workspace. */
  readonly tokens: SimTokenInfo[];
  /** Those the daemon minted that are neither revoked nor expired. */
  readonly live: SimTokenInfo[];
}

/** The database, read-only as another process would read it, per workspace name. */
function readDb(home: Home): Map<string, { keys: KeyRow[]; mintingSince: number | null }> {
  const db = new Database(home.paths.database, { readonly: true, fileMustExist: true });
  try {
    const workspaces = db
      .prepare(
        `SELECT w.id, w.name, s.minting_since AS mintingSince FROM workspaces w JOIN workspace_status s ON s.workspace_id = w.id`,
      )
      .all() as Array<{ id: string; name: string; mintingSince: number | null }>;
    const keys = db.prepare(
      `SELECT state, token_id AS tokenId, name FROM api_keys WHERE workspace_id = ? ORDER BY stored_at`,
    );
    return new Map(workspaces.map((w) => [w.name, { keys: keys.all(w.id) as KeyRow[], mintingSince: w.mintingSince }]));
  } finally {
    db.close();
  }
}

/** The database and the simulator side by side, for every workspace of the installation. */
async function snapshots(lab: Lab): Promise<Map<string, Snapshot>> {
  const db = readDb(lab.home);
  const tokens = await lab.hub.tokens();
  const result = new Map<string, Snapshot>();
  for (const [name, row] of db) {
    const mine = tokens.filter((k) => k.workspace === name);
    // The key the user pasted is never revoked (#11): "live" counts only keys the daemon minted.
    result.set(name, {
      ...row,
      tokens: mine,
      live: mine.filter((k) => !k.revoked && !k.expired && k.name.startsWith(OURS)),
    });
  }
  return result;
}

async function snapshot(lab: Lab, workspace: string): Promise<Snapshot> {
  const s = (await snapshots(lab)).get(workspace);
  if (!s) throw new Error(`workspace ${workspace} is not in the database`);
  return s;
}

type Phase = 'not started' | 'intent' | 'minted' | 'pending' | 'retiring' | 'done';

/** Where an interrupted rotation stands, from the database and the hub. */
function phaseOf(s: Snapshot, originalId: string): Phase {
  const held = new Set(s.keys.map((k) => k.tokenId));
  if (s.keys.some((k) => k.state === 'pending')) return 'pending';
  if (s.keys.some((k) => k.state === 'retiring')) return 'retiring';
  if (s.mintingSince !== null)
    return s.live.some((k) => k.name.startsWith(OURS) && !held.has(k.id)) ? 'minted' : 'intent';
  return s.keys.length === 1 && s.keys[0]!.tokenId !== originalId ? 'done' : 'not started';
}

/** One active row and no mark, and the hub's only live key of ours in the workspace is that one. */
function settled(s: Snapshot): boolean {
  const [only] = s.keys;
  return (
    s.keys.length === 1 &&
    only!.state === 'active' &&
    s.mintingSince === null &&
    s.live.length === 1 &&
    s.live[0]!.id === only!.tokenId
  );
}

const tail = (text: string, n = 6_000) => (text.length > n ? `…${text.slice(-n)}` : text);

// ---- the checks after each restart -------------------------------------------------------

/**
 * Wait (bounded) until the restarted daemon has finished the rotation, then check the issue's
 * promise: exactly one active key, it works, the hub holds no other live key of the workspace,
 * and the daemon still serves credentials. The installation's other workspaces are checked too.
 */
async function checkRecovered(
  tt: Test,
  lab: Lab,
  daemon: StartedServe,
  workspace: string,
  original: SimKey,
): Promise<Snapshot> {
  try {
    await waitFor(
      async () => {
        const s = await snapshot(lab, workspace);
        return settled(s) && s.keys[0]!.tokenId !== original.id;
      },
      CONVERGE_WAIT_MS,
      { what: `the rotation of ${workspace} to finish`, intervalMs: 100 },
    );
  } catch (err) {
    tt.fail((err as Error).message, { state: await snapshot(lab, workspace), daemon: tail(daemon.output()) });
  }
  const s = await snapshot(lab, workspace);
  tt.equal(s.keys.length, 1, 'exactly one api_keys row');
  tt.equal(s.keys[0]?.state, 'active', 'and it is active');
  const activeId = s.keys[0]?.tokenId;
  tt.not(activeId, original.id, 'the original key was rotated away');
  tt.equal(s.mintingSince, null, 'no minting mark left');
  tt.same(
    s.live.map((k) => k.id),
    [activeId],
    'the simulator holds exactly one live key of ours in the workspace, the active one: no orphan',
  );
  tt.notOk(s.tokens.find((k) => k.id === original.id)?.revoked, 'the pasted key is never revoked');
  tt.ok(
    s.tokens.filter((k) => k.name.startsWith(OURS) && k.id !== activeId).every((k) => k.revoked),
    'every other key the daemon minted is revoked',
  );

  // The active key, as the daemon hands it out, works against the hub; the original does not.
  const auth = { authorization: clientToken(lab.home, workspace) };
  const tokenAnswer = await fetch(`${daemon.url}/v1/workspaces/${workspace}/token`, { headers: auth });
  tt.equal(tokenAnswer.status, 200, 'the daemon hands out the API key');
  const handed = (await tokenAnswer.json()) as { tokenId: string | null; token: string };
  tt.equal(handed.tokenId, activeId, 'the key the daemon hands out is the active one');
  const listWith = async (key: string) => {
    const answer = await fetch(`${lab.simUrl}/api/workspaces/${workspace}/me/tokens`, {
      headers: { authorization: `Bearer ${key}` },
    });
    await answer.body?.cancel();
    return answer.status;
  };
  tt.equal(await listWith(handed.token), 200, 'the active key works against the hub');
  tt.equal(await listWith(original.token), 200, 'the pasted key still works (other machines may use it)');

  const creds = await fetch(`${daemon.url}/v1/workspaces/${workspace}/credentials`, { headers: auth });
  tt.equal(creds.status, 200, 'the daemon still serves credentials');
  tt.match(await creds.json(), { AccessKeyId: String, SecretAccessKey: String, Token: String, Expiration: String });

  // Earlier runs' workspaces stay settled: one active key each, the only live one on the hub.
  for (const [name, other] of await snapshots(lab)) {
    if (name !== workspace && !settled(other)) tt.fail(`workspace ${name} is no longer settled`, { state: other });
  }
  return s;
}

/** Wait (bounded) for a daemon that should kill itself; true when it died by SIGKILL. */
async function expectKilled(tt: Test, daemon: ServeProcess, why: string): Promise<boolean> {
  const exit = await daemon.waitExit(DEATH_WAIT_MS);
  if (!exit) {
    tt.fail(`the daemon did not die within ${DEATH_WAIT_MS} ms (${why})`, { daemon: tail(daemon.output()) });
    await daemon.kill();
    return false;
  }
  tt.equal(exit.signal, 'SIGKILL', `the daemon died by SIGKILL (${why})`, {
    exit: describeExit(exit),
    daemon: tail(daemon.output()),
  });
  return exit.signal === 'SIGKILL';
}

async function stopDaemon(tt: Test, daemon: ServeProcess): Promise<void> {
  const exit = await daemon.stop();
  tt.equal(exit.code, 0, 'the daemon stops cleanly on SIGTERM', { exit: describeExit(exit) });
}

// ---- deterministic: a kill right after each step -----------------------------------------

/** What the database and hub show after a kill right after each step. */
const EXPECTED_PHASE: Record<Exclude<RotationStep, 'revoked'>, Phase> = {
  intent: 'intent',
  minted: 'minted',
  persisted: 'pending',
  verified: 'pending',
  // The pasted key is forgotten in the same transaction: nothing is left to revoke.
  promoted: 'done',
};

t.test('a kill right after each rotation step is recovered on restart', async (t) => {
  const lab = await makeLab(t);
  for (const step of STEPS as ReadonlyArray<keyof typeof EXPECTED_PHASE>) {
    await t.test(`killed after "${step}"`, async (t) => {
      const started = Date.now();
      const workspace = `step-${step}`;
      const original = await addWorkspace(lab, workspace);

      const crashing = spawnServe(lab.home, { t, env: { EODH_CREDD_FAILPOINT: `rotation:${step}` } });
      if (!(await expectKilled(t, crashing, `failpoint rotation:${step}`))) return;
      const crashed = await snapshot(lab, workspace);
      t.equal(
        phaseOf(crashed, original.id),
        EXPECTED_PHASE[step],
        `the kill left the rotation at "${EXPECTED_PHASE[step]}"`,
        {
          state: crashed,
        },
      );

      const daemon = await startServe(lab.home, { t });
      const s = await checkRecovered(t, lab, daemon, workspace, original);
      // A kill after "minted" costs one extra key (the orphan, revoked); a kill anywhere else none.
      const minted = s.tokens.filter((k) => k.name.startsWith(OURS)).length;
      t.equal(minted, step === 'minted' ? 2 : 1, 'no more keys minted than the crash made necessary');
      await stopDaemon(t, daemon);
      t.comment(`${step}: ${Date.now() - started} ms`);
    });
  }

  // What the user sees afterwards: every workspace fine, nothing needs attention.
  const status = await runCli(lab.home, ['status', '--json']);
  t.equal(status.code, 0, 'status reports nothing that needs attention', {
    stdout: status.stdout,
    stderr: status.stderr,
  });
  const rows = JSON.parse(status.stdout || '[]') as Array<{
    workspace: string;
    rotation: string;
    apiKeyDaysLeft: number | null;
  }>;
  t.equal(rows.length, STEPS.length, 'status lists every workspace');
  for (const row of rows) {
    t.equal(row.rotation, 'ok', `${row.workspace}: rotation ok`);
    t.ok(
      (row.apiKeyDaysLeft ?? 0) >= 29,
      `${row.workspace}: the active key is a fresh one (${row.apiKeyDaysLeft} days left)`,
    );
  }
});

// ---- random: kills at random moments -----------------------------------------------------

/** mulberry32: a small seeded generator, so a failing sequence can be replayed with CRASH_SEED. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4_294_967_296;
  };
}

type Anchor = 'spawn' | 'ready' | 'mint';

/** Kill the daemon at a random moment after `anchor`; where the rotation stood then. */
async function killAtRandom(
  tt: Test,
  lab: Lab,
  workspace: string,
  originalId: string,
  plan: { anchor: Anchor; afterMs: number; slow: { delayMs: number; count: number } },
): Promise<Phase> {
  await lab.hub.setFault('slow', plan.slow);
  const mintsBefore = lab.sim.state.stats().workspaces[workspace]?.mintTokens ?? 0;
  const victim = spawnServe(lab.home, { t: tt });
  try {
    if (plan.anchor === 'ready') {
      await waitFor(() => readRuntime(lab.home, victim.pid) !== null || victim.hasExited(), DEATH_WAIT_MS, {
        what: 'the daemon to start',
        intervalMs: 5,
      });
    } else if (plan.anchor === 'mint') {
      // The simulator counts a request as it arrives, before the slow fault holds it.
      const minting = () => (lab.sim.state.stats().workspaces[workspace]?.mintTokens ?? 0) > mintsBefore;
      await waitFor(() => minting() || victim.hasExited(), DEATH_WAIT_MS, { what: 'the mint request', intervalMs: 2 });
    }
  } catch (err) {
    tt.fail((err as Error).message, { daemon: tail(victim.output()) });
  }
  await sleep(plan.afterMs);
  tt.notOk(victim.hasExited(), 'the daemon was still running when killed', { daemon: tail(victim.output()) });
  const exit = await victim.kill();
  tt.equal(exit.signal, 'SIGKILL', 'killed by SIGKILL');
  await lab.hub.setFault('none');
  const phase = phaseOf(await snapshot(lab, workspace), originalId);
  tt.comment(`the kill landed at "${phase}"`);
  return phase;
}

/** Runs first..last (1-based, inclusive) of the random sequence, in one lab. */
function randomLane(lane: number, first: number, last: number): void {
  if (last < first) return;
  t.test(`kills at random moments are recovered on restart (runs ${first}-${last})`, async (t) => {
    const lab = await makeLab(t);
    const landed: Record<Phase, number> = { 'not started': 0, intent: 0, minted: 0, pending: 0, retiring: 0, done: 0 };
    for (let run = first; run <= last; run++) {
      // Each run draws from its own stream: a run's plan depends only on the seed and its number.
      const random = seeded(SEED + run * 7919);
      const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
      const plan = () => {
        const slow = { delayMs: between(0, 300), count: between(1, 4) };
        // Timed from the spawn (kills during start-up too), from daemon.json (the first sweep
        // starts the rotation at once), or from the mint request reaching the hub.
        const r = random();
        const anchor: Anchor = r < 0.15 ? 'spawn' : r < 0.4 ? 'ready' : 'mint';
        const afterMs = anchor === 'spawn' ? between(0, 1_500) : between(0, slow.count * slow.delayMs + 150);
        return { anchor, afterMs, slow };
      };
      const plans = [plan()];
      // Sometimes the restarted daemon is killed as well, in the middle of its recovery.
      if (random() < 0.3) plans.push({ ...plan(), anchor: 'ready' as const });
      const describe = plans
        .map((p) => `slow hub ${p.slow.delayMs} ms × ${p.slow.count}, kill ${p.afterMs} ms after ${p.anchor}`)
        .join('; then ');
      await t.test(`run ${run}: ${describe}`, async (t) => {
        const started = Date.now();
        const workspace = `rnd-${run}`;
        const original = await addWorkspace(lab, workspace);
        for (const [i, p] of plans.entries()) {
          const phase = await killAtRandom(t, lab, workspace, original.id, p);
          if (i === 0) landed[phase] += 1;
        }
        const daemon = await startServe(lab.home, { t });
        await checkRecovered(t, lab, daemon, workspace, original);
        await stopDaemon(t, daemon);
        t.comment(`run ${run}: ${Date.now() - started} ms`);
      });
    }
    // Where kills land depends on the machine's speed: reported, not asserted.
    t.comment(`lane ${lane}: where the first kills landed: ${JSON.stringify(landed)}`);
  });
}

randomLane(1, 1, Math.ceil(RUNS / 2));
randomLane(2, Math.ceil(RUNS / 2) + 1, RUNS);

// ---- two kills in a row ----------------------------------------------------------------

/**
 * Two kills in a row: [first step, step of the recovery or the re-rotation, phase left, keys minted in all].
 * After "minted", the restart revokes the orphan and rotates again: "intent" of that rotation.
 * After "persisted", the restart verifies and promotes the pending key: "promoted" of the recovery.
 */
const DOUBLE_KILLS: ReadonlyArray<readonly [RotationStep, RotationStep, Phase, number]> = [
  ['minted', 'intent', 'intent', 2],
  ['persisted', 'promoted', 'done', 1],
];

t.test('a second kill inside the recovery of the first is recovered on restart', async (t) => {
  const lab = await makeLab(t);
  for (const [first, second, phase, mints] of DOUBLE_KILLS) {
    await t.test(`killed after "${first}", then after "${second}" while recovering`, async (t) => {
      const workspace = `twice-${first}-${second}`;
      const original = await addWorkspace(lab, workspace);
      for (const step of [first, second]) {
        const crashing = spawnServe(lab.home, { t, env: { EODH_CREDD_FAILPOINT: `rotation:${step}` } });
        if (!(await expectKilled(t, crashing, `failpoint rotation:${step}`))) return;
      }
      const crashed = await snapshot(lab, workspace);
      t.equal(phaseOf(crashed, original.id), phase, `the second kill left the rotation at "${phase}"`, {
        state: crashed,
      });

      const daemon = await startServe(lab.home, { t });
      const s = await checkRecovered(t, lab, daemon, workspace, original);
      t.equal(
        s.tokens.filter((k) => k.name.startsWith(OURS)).length,
        mints,
        'no more keys minted than the crashes made necessary',
      );
      await stopDaemon(t, daemon);
    });
  }
});

// ---- the hub down during recovery --------------------------------------------------------

t.test('a kill while the hub is down during recovery still converges once the hub answers', async (t) => {
  const lab = await makeLab(t);
  const { hub } = lab;
  const workspace = 'hub-down';
  const original = await addWorkspace(lab, workspace);
  const listings = async () => (await hub.stats()).workspaces[workspace]?.listTokens ?? 0;

  // Leave an orphan behind: minted on the hub, never stored.
  const crashing = spawnServe(lab.home, { t, env: { EODH_CREDD_FAILPOINT: 'rotation:minted' } });
  if (!(await expectKilled(t, crashing, 'failpoint rotation:minted'))) return;
  t.equal(phaseOf(await snapshot(lab, workspace), original.id), 'minted', 'an orphan key is on the hub');

  // Restart with the hub down: recovery fails and keeps everything; the daemon keeps serving.
  await hub.setFault('down');
  try {
    const before = await listings();
    const down = await startServe(lab.home, { t });
    await waitFor(async () => (await listings()) >= before + 3, CONVERGE_WAIT_MS, {
      what: 'recovery to try the hub three times',
    });
    t.notOk(down.hasExited(), 'the daemon survives the hub being down');
    t.equal(
      phaseOf(await snapshot(lab, workspace), original.id),
      'minted',
      'nothing was given up while the hub was down',
    );
    const creds = await fetch(`${down.url}/v1/workspaces/${workspace}/credentials`, {
      headers: { authorization: clientToken(lab.home, workspace) },
    });
    await creds.body?.cancel();
    t.equal(creds.status, 200, 'credentials are still served from the cache');
    const exit = await down.kill();
    t.equal(exit.signal, 'SIGKILL', 'killed while the hub is down');
  } finally {
    // The hub answers again after three more failed calls.
    await hub.setFault('down', { count: 3 });
  }

  const before = await listings();
  const daemon = await startServe(lab.home, { t });
  await checkRecovered(t, lab, daemon, workspace, original);
  const lists = (await listings()) - before;
  t.ok(lists >= 3, `the restarted daemon went through the outage (${lists} token listings)`);
  await stopDaemon(t, daemon);
});

// ---- hub answers that leave a minted key behind ----------------------------------------

/** What the proxy does with one request: pass it on, let the hub act but lose its answer, or refuse it. */
type Interception = 'forward' | 'lose-answer' | 'refuse';

/**
 * A proxy in front of the simulator. `decide` sees each request; "lose-answer" lets the hub do
 * the work and then resets the connection instead of answering, "refuse" answers 403 without
 * asking the hub (EODH's documented, recurring 403 for a valid key).
 */
async function hubProxy(
  tt: Test,
  target: string,
  decide: (method: string, path: string, bearer: string) => Interception,
): Promise<string> {
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const forward = async () => {
        const method = request.method ?? 'GET';
        const path = request.url ?? '/';
        const headers: Record<string, string> = {};
        for (const name of ['authorization', 'content-type', 'accept']) {
          const value = request.headers[name];
          if (typeof value === 'string') headers[name] = value;
        }
        const action = decide(method, path, (headers.authorization ?? '').replace(/^Bearer /, ''));
        if (action === 'refuse') {
          response.writeHead(403, { 'content-type': 'application/json' });
          response.end('{"error":"forbidden","message":"Forbidden."}');
          return;
        }
        const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
        const answer = await fetch(`${target}${path}`, { method, headers, body });
        const payload = Buffer.from(await answer.arrayBuffer());
        if (action === 'lose-answer') {
          request.socket.destroy();
          return;
        }
        response.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
        response.end(payload);
      };
      forward().catch(() => request.socket.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  tt.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * Start a daemon on a workspace reached through `decide`'s proxy, let the rotation finish, and
 * check that the hub holds no live key of ours besides the active one. `risk` says how an orphan
 * could arise in the scenario.
 */
async function checkNoOrphanThroughProxy(
  t: Test,
  workspace: string,
  decide: (original: SimKey) => (method: string, path: string, bearer: string) => Interception,
  risk: string,
): Promise<void> {
  const lab = await makeLab(t);
  let original: SimKey | undefined;
  const proxyUrl = await hubProxy(t, lab.simUrl, (method, path, bearer) =>
    original ? decide(original)(method, path, bearer) : 'forward',
  );
  original = await addWorkspace(lab, workspace, proxyUrl);
  const daemon = await startServe(lab.home, { t });
  try {
    await waitFor(async () => phaseOf(await snapshot(lab, workspace), original.id) === 'done', CONVERGE_WAIT_MS, {
      what: 'the rotation to finish',
      intervalMs: 100,
    });
  } catch (err) {
    t.fail((err as Error).message, { daemon: tail(daemon.output()) });
  }
  await sleep(1_500); // a sweep or two more, to give recovery its chance
  const s = await snapshot(lab, workspace);
  t.same(
    s.live.map((k) => k.id),
    [s.keys[0]?.tokenId],
    `the simulator holds exactly one live key of ours in the workspace, the active one: no orphan (${risk})`,
    { tokens: s.tokens },
  );
  await stopDaemon(t, daemon);
}

t.test('a minted key whose answer was lost is not left alive on the hub', async (t) => {
  let lost = 0;
  await checkNoOrphanThroughProxy(
    t,
    'lost-answer',
    () => (method, path) =>
      method === 'POST' && path.endsWith('/me/tokens') && lost++ === 0 ? 'lose-answer' : 'forward',
    'the hub minted a key but its answer was lost: the minting mark must survive and the POST must not be retried',
  );
});

t.test('a minted key the hub refuses at verification is not left alive on the hub', async (t) => {
  let refused = 0;
  await checkNoOrphanThroughProxy(
    t,
    'refused-new-key',
    (original) => (method, path, bearer) =>
      method === 'POST' && path.endsWith('/me/s3-tokens') && bearer !== original.token && refused++ === 0
        ? 'refuse'
        : 'forward',
    'the hub refuses the new key at verification: it must be revoked, not just forgotten',
  );
});

/**
 * The benchmark in a very short mode: every section runs against the built daemon and writes its
 * JSON. Proves the bench works, asserts no timing (speed is what the bench reports, not what a
 * test checks), only what must hold at any speed: answers are 200s and a cold burst is one hub
 * call.
 */

import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import {
  type BenchResults,
  newResults,
  render,
  renderTargets,
  runBench,
  runSection,
  SECTIONS,
  saveResults,
  settingsFromEnv,
  targets,
} from '../../bench/suite.js';
import { CEILING_SERVER, CLI, unitNodeFlags } from '../../bench/support.js';

t.test('npm run bench, in miniature', async (t) => {
  if (!existsSync(CLI) || !existsSync(CEILING_SERVER)) {
    t.fail(`the bench runs the built daemon: run "npm run build" first (${CLI}, ${CEILING_SERVER})`);
    return;
  }
  const out = t.testdir();
  const settings = settingsFromEnv({
    BENCH_SECONDS: '0.4',
    BENCH_WARMUP_SECONDS: '0',
    BENCH_CONNECTIONS: '2',
    BENCH_RATE: '100',
    BENCH_BURST: '20',
    BENCH_STARTUP_RUNS: '1',
    BENCH_STARTUP_WORKSPACES: '1',
    BENCH_MEMORY_WORKSPACES: '3',
    BENCH_MEMORY_REQUESTS: '60',
    BENCH_SETTLE_MS: '0',
    BENCH_SWEEP_WORKSPACES: '1,4',
    BENCH_SWEEP_DUE_MAX: '4',
    BENCH_CLI_RUNS: '2',
    BENCH_IDLE_SECONDS: '1',
    BENCH_IDLE_SETTLE_SECONDS: '0',
    BENCH_OUT: out,
  });
  // One after another, as `npm run bench` runs them: side by side on two loaded cores, a daemon
  // could take a minute to answer its first request.
  const r = newResults(settings);
  for (const section of SECTIONS) await runSection(section, settings, r);
  const printed = SECTIONS.map((section) => render(section, r));
  r.targets = targets(r);
  printed.push(renderTargets(r.targets));
  saveResults(r);

  const rows = r.throughput?.rows ?? [];
  t.equal(rows.length, 1, 'one row per connection count');
  for (const row of rows) {
    t.ok(row.ours.ok > 0 && row.ceiling.ok > 0, 'both servers answered 200');
    t.equal(row.ours.non200 + row.ours.errors, 0, 'the daemon answered nothing but 200 to its owner');
    t.ok(Number.isFinite(row.ratio) && Number.isFinite(row.cpuRatio), 'ratios are numbers');
  }
  t.ok(r.throughput!.bodyBytes > 0);

  if (r.cli) {
    t.same(
      r.cli.rows.map((row) => row.command),
      ['node -e 0', 'env', 'status', 'token', 'credential-process'],
      'hyperfine timed each command beside node -e 0',
    );
    t.ok(r.cli.rows.every((row) => row.meanMs > 0 && Number.isFinite(row.ratio)));
  } else t.equal(r.cli, null, 'the command latency is skipped without hyperfine');

  t.equal(r.burst?.hubCalls, 1, 'the cold burst made exactly one hub call');
  t.same(r.burst?.cold.statuses, { 200: 20 }, 'every request of the burst got the credential');

  t.same(
    r.startup?.rows.map((row) => row.workspaces),
    [1],
  );
  t.ok(r.startup!.rows.every((row) => row.medianMs > 0));

  t.same(
    r.memory?.rows.map((row) => [row.nodeFlags, row.variant]),
    [
      [unitNodeFlags(), false],
      [[], true],
    ],
    "the daemon with the unit's Node flags, then with Node's defaults",
  );
  const mem = r.memory?.rows[0];
  t.equal(mem?.workspaces, 3);
  t.equal(mem?.ok, 60, 'every request spread over the workspaces was answered');
  t.ok(mem!.idle.rssMb > 0 && mem!.afterLoad.rssMb > 0 && mem!.idle.anonMb > 0, 'RSS read from /proc');

  t.same(
    r.sweep?.map((row) => row.workspaces),
    [1, 4],
  );
  t.same(
    r.sweep?.map((row) => row.due && { hubCalls: row.due.hubCalls, failed: row.due.failed }),
    [
      { hubCalls: 1, failed: 0 },
      { hubCalls: 4, failed: 0 },
    ],
    'a sweep with everything due renews each workspace once',
  );
  t.equal(r.peer?.found, r.peer?.connections, 'the peer check found this process as the client of every connection');

  t.ok(r.targets && r.targets.length > 0, 'targets are checked');
  const saved = JSON.parse(readFileSync(r.file!, 'utf8')) as BenchResults;
  t.equal(saved.machine.nproc, r.machine.nproc, 'the JSON carries the machine');
  t.ok(existsSync(`${out}/latest.json`));
  t.match(printed.join('\n'), /Node ceiling/);
});

t.test('runBench prints each section and writes the JSON', async (t) => {
  const out = t.testdir();
  const settings = settingsFromEnv({
    BENCH_ONLY: 'sweep',
    BENCH_SWEEP_WORKSPACES: '2',
    BENCH_SWEEP_DUE_MAX: '0',
    BENCH_OUT: out,
  });
  const printed: string[] = [];
  const r = await runBench(settings, (text) => printed.push(text));
  t.same(
    r.sweep?.map((row) => [row.workspaces, row.due]),
    [[2, null]],
    'no due sweep above dueMax',
  );
  t.match(printed.join('\n'), /Scheduler cost per workspace/);
  t.ok(existsSync(r.file!));
});

t.test('settings come from the environment and are checked', async (t) => {
  const s = settingsFromEnv({ BENCH_SECONDS: '2', BENCH_ONLY: 'burst,sweep', BENCH_CONNECTIONS: '1,5' });
  t.equal(s.seconds, 2);
  t.same(s.sections, ['burst', 'sweep']);
  t.same(s.connections, [1, 5]);
  t.throws(() => settingsFromEnv({ BENCH_ONLY: 'nope' }), /unknown section/);
  t.throws(() => settingsFromEnv({ BENCH_SECONDS: 'soon' }), /BENCH_SECONDS/);
  t.throws(() => settingsFromEnv({ BENCH_CONNECTIONS: '1,x' }), /BENCH_CONNECTIONS/);
});

t.test("the daemon runs with the systemd unit's Node flags unless BENCH_NODE_FLAGS says otherwise", async (t) => {
  t.same(unitNodeFlags(), ['--max-semi-space-size=4'], 'read from systemd/eodh-credd.service');
  t.same(unitNodeFlags('[Service]\nExecStart=/x\n'), [], 'a unit without NODE_OPTIONS: none');
  t.same(unitNodeFlags('Environment="NODE_OPTIONS=--a --b=1"\n'), ['--a', '--b=1'], 'quoted, several');
  t.same(settingsFromEnv({}).daemonNodeFlags, unitNodeFlags());
  t.same(settingsFromEnv({ BENCH_NODE_FLAGS: '' }).daemonNodeFlags, [], "empty: Node's defaults");
  t.same(settingsFromEnv({ BENCH_NODE_FLAGS: '--max-semi-space-size=4' }).daemonNodeFlags, ['--max-semi-space-size=4']);
});

/**
 * 6. Idle cost: CPU time the daemon spends per minute with 10 workspaces holding fresh credentials
 * and nothing asking (utime+stime from /proc/<pid>/stat over a measured window), beside a bare
 * Node process idling in the same run: the wake-ups an idle laptop pays for (#13).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fakeS3, seedWorkspaces } from '../seed.js';
import { BenchHome, spawnDaemon } from '../support.js';

export interface IdleOptions {
  readonly workspaces: number;
  readonly seconds: number;
  /** Wait at least this long after start (then until a quiet 5 s window, at most 90 s). */
  readonly settleSeconds: number;
}

export interface IdleResult {
  readonly workspaces: number;
  readonly seconds: number;
  /** How long after start the daemon first spent a whole quiet window (under 2 ms in 5 s). */
  readonly settledAfterSeconds: number;
  readonly daemonMsPerMinute: number;
  readonly nodeMsPerMinute: number;
}

/**
 * CPU time of a process, all threads, in ms: the first field of /proc/<pid>/task/<tid>/schedstat is
 * nanoseconds on a CPU (utime/stime in /proc/<pid>/stat count 10 ms ticks, too coarse for an idle minute).
 */
function cpuMsOf(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1e6;
}

const SETTLE_WINDOW_MS = 5_000;
const SETTLE_LONGEST_MS = 90_000;

/** Wait at least `leastSeconds` (at most 90 s) until a 5 s window costs under 2 ms of CPU; seconds waited. */
async function settle(pid: number, leastSeconds: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const before = cpuMsOf(pid);
    await sleep(SETTLE_WINDOW_MS);
    const waited = Date.now() - started;
    const quiet = cpuMsOf(pid) - before < 2;
    if ((quiet && waited >= leastSeconds * 1000) || waited >= SETTLE_LONGEST_MS) return Math.round(waited / 1000);
  }
}

async function measure(pid: number, seconds: number): Promise<number> {
  const before = cpuMsOf(pid);
  await sleep(seconds * 1000);
  return ((cpuMsOf(pid) - before) * 60) / seconds;
}

export async function idle(options: IdleOptions): Promise<IdleResult> {
  const home = BenchHome.create();
  const node = spawn(process.execPath, ['-e', 'setInterval(() => {}, 2 ** 30)'], { stdio: 'ignore' });
  try {
    const store = home.openStore();
    seedWorkspaces(store, {
      count: options.workspaces,
      hubUrl: 'http://127.0.0.1:9',
      s3: () => fakeS3(Date.now()),
    });
    store.close();
    const daemon = await spawnDaemon(home);
    try {
      // Let start-up work finish before the window opens: the first sweep, time-zone data, and V8's
      // one-off clean-up of the start-up heap (~100 ms of CPU some 20 s after start).
      const settledAfter = await settle(daemon.pid, options.settleSeconds);
      const pid = node.pid;
      if (pid === undefined) throw new Error('the bare node process did not start');
      const [daemonMsPerMinute, nodeMsPerMinute] = await Promise.all([
        measure(daemon.pid, options.seconds),
        measure(pid, options.seconds),
      ]);
      return {
        workspaces: options.workspaces,
        seconds: options.seconds,
        settledAfterSeconds: settledAfter,
        daemonMsPerMinute,
        nodeMsPerMinute,
      };
    } finally {
      await daemon.stop();
    }
  } finally {
    node.kill();
    home.remove();
  }
}

/**
 * 6. Idle cost: CPU time the daemon spends per minute with 10 workspaces holding fresh credentials
 * and nothing asking (utime+stime from /proc/<pid>/stat over a measured window), beside a bare
 * Node process idling in the same run: the wake-ups an idle laptop pays for (#13).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fakeS3, seedWorkspaces } from '../seed.js';
import { BenchHome, spawnDaemon } from '../support.js';

export interface IdleOptions {
  readonly workspaces: number;
  readonly seconds: number;
}

export interface IdleResult {
  readonly workspaces: number;
  readonly seconds: number;
  readonly daemonMsPerMinute: number;
  readonly nodeMsPerMinute: number;
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** utime + stime of a process, in ms. */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
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
      // Let start-up work (first sweep, schedule, time-zone data) finish before the window opens.
      await sleep(3_000);
      const pid = node.pid;
      if (pid === undefined) throw new Error('the bare node process did not start');
      const [daemonMsPerMinute, nodeMsPerMinute] = await Promise.all([
        measure(daemon.pid, options.seconds),
        measure(pid, options.seconds),
      ]);
      return { workspaces: options.workspaces, seconds: options.seconds, daemonMsPerMinute, nodeMsPerMinute };
    } finally {
      await daemon.stop();
    }
  } finally {
    node.kill();
    home.remove();
  }
}

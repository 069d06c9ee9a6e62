/**
 * 4. Memory: the daemon's resident set (VmRSS) idle, and after a number of credential requests
 * spread round-robin over all its workspaces, for several numbers of workspaces; beside the idle
 * RSS of the bare Node ceiling server (what Node alone costs, same run).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { load } from '../load.js';
import { fakeS3, seedWorkspaces } from '../seed.js';
import { BenchHome, spawnCeiling, spawnDaemon, type Memory } from '../support.js';

export interface MemoryOptions {
  readonly workspaces: readonly number[];
  readonly requests: number;
  readonly connections: number;
  /** How long to let the daemon settle before reading its idle RSS. */
  readonly settleMs: number;
}

export interface MemoryRow {
  readonly workspaces: number;
  readonly idle: Memory;
  readonly afterLoad: Memory;
  readonly requests: number;
  readonly ok: number;
}

export interface MemoryResult {
  readonly rows: MemoryRow[];
  readonly nodeIdle: Memory;
}

export async function memory(options: MemoryOptions): Promise<MemoryResult> {
  const rows: MemoryRow[] = [];
  for (const count of options.workspaces) {
    const home = BenchHome.create();
    try {
      const store = home.openStore();
      const seeded = seedWorkspaces(store, { count, hubUrl: 'http://127.0.0.1:9', s3: () => fakeS3(Date.now()) });
      store.close();
      const daemon = await spawnDaemon(home);
      try {
        await sleep(options.settleMs);
        const idle = daemon.memory();
        let next = 0;
        const result = await load({
          url: `${daemon.url}/`,
          connections: options.connections,
          amount: options.requests,
          setupRequest: (request) => {
            const ws = seeded[next++ % seeded.length]!;
            return { ...request, path: `/v1/workspaces/${ws.name}/credentials`, headers: { ...request.headers, authorization: ws.token } };
          },
        });
        await sleep(options.settleMs);
        rows.push({ workspaces: count, idle, afterLoad: daemon.memory(), requests: result.ok + result.non200, ok: result.ok });
      } finally {
        await daemon.stop();
      }
    } finally {
      home.remove();
    }
  }
  const ceiling = await spawnCeiling(1024);
  await sleep(options.settleMs);
  const nodeIdle = ceiling.memory();
  await ceiling.stop();
  return { rows, nodeIdle };
}

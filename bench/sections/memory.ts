/**
 * 4. Memory: the daemon's resident set (VmRSS) idle, and after a number of credential requests
 * spread round-robin over all its workspaces, for several numbers of workspaces; beside the idle
 * RSS of the bare Node ceiling server (what Node alone costs, same run).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { load } from '../load.js';
import { fakeS3, seedWorkspaces } from '../seed.js';
import { BenchHome, type Memory, spawnCeiling, spawnDaemon } from '../support.js';

export interface MemoryOptions {
  readonly workspaces: readonly number[];
  readonly requests: number;
  readonly connections: number;
  /** How long to let the daemon settle before reading its idle RSS. */
  readonly settleMs: number;
  /** Node flags of the daemon (the systemd unit's NODE_OPTIONS). */
  readonly nodeFlags: readonly string[];
  /**
   * Node flags to compare with, on the daemon with the middle number of workspaces; [] is Node's
   * defaults (the daemon run by hand, not by the unit); undefined, no comparison.
   */
  readonly variantFlags?: readonly string[] | undefined;
}

export interface MemoryRow {
  readonly workspaces: number;
  /** Node flags the daemon ran with (none: the defaults). */
  readonly nodeFlags: readonly string[];
  /** The comparison row (variantFlags), not the daemon as the unit runs it. */
  readonly variant: boolean;
  readonly idle: Memory;
  readonly afterLoad: Memory;
  readonly requests: number;
  readonly ok: number;
}

export interface MemoryResult {
  readonly rows: MemoryRow[];
  readonly nodeIdle: Memory;
}

async function measure(
  count: number,
  nodeFlags: readonly string[],
  variant: boolean,
  options: MemoryOptions,
): Promise<MemoryRow> {
  const home = BenchHome.create();
  try {
    const store = home.openStore();
    const seeded = seedWorkspaces(store, { count, hubUrl: 'http://127.0.0.1:9', s3: () => fakeS3(Date.now()) });
    store.close();
    const daemon = await spawnDaemon(home, [...nodeFlags]);
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
          return {
            ...request,
            path: `/v1/workspaces/${ws.name}/credentials`,
            headers: { ...request.headers, authorization: ws.token },
          };
        },
      });
      await sleep(options.settleMs);
      return {
        workspaces: count,
        nodeFlags,
        variant,
        idle,
        afterLoad: daemon.memory(),
        requests: result.ok + result.non200,
        ok: result.ok,
      };
    } finally {
      await daemon.stop();
    }
  } finally {
    home.remove();
  }
}

export async function memory(options: MemoryOptions): Promise<MemoryResult> {
  const rows: MemoryRow[] = [];
  for (const count of options.workspaces) rows.push(await measure(count, options.nodeFlags, false, options));
  const middle = options.workspaces[Math.floor((options.workspaces.length - 1) / 2)];
  if (options.variantFlags && middle !== undefined)
    rows.push(await measure(middle, options.variantFlags, true, options));
  const ceiling = await spawnCeiling(1024);
  await sleep(options.settleMs);
  const nodeIdle = ceiling.memory();
  await ceiling.stop();
  return { rows, nodeIdle };
}

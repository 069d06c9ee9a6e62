/**
 * 3. Start-up: from spawning `eodh-credd serve` to its first successful GET /healthz, the median
 * of several runs, for each number of workspaces; beside the same measure for the bare Node
 * ceiling server (the cost of starting Node itself on this machine, same run).
 */
import { fakeS3, seedWorkspaces } from '../seed.js';
import { BenchHome, median, spawnCeiling, spawnDaemon } from '../support.js';

export interface StartupOptions {
  readonly runs: number;
  readonly workspaces: readonly number[];
  /** Node flags for the daemon. */
  readonly daemonNodeArgs?: string[];
}

export interface StartupRow {
  readonly workspaces: number;
  readonly runsMs: number[];
  readonly medianMs: number;
}

export interface StartupResult {
  readonly rows: StartupRow[];
  readonly nodeRunsMs: number[];
  readonly nodeMedianMs: number;
}

export async function startup(options: StartupOptions): Promise<StartupResult> {
  const rows: StartupRow[] = [];
  for (const count of options.workspaces) {
    const home = BenchHome.create();
    try {
      const store = home.openStore();
      seedWorkspaces(store, { count, hubUrl: 'http://127.0.0.1:9', s3: () => fakeS3(Date.now()) });
      store.close();
      const runsMs: number[] = [];
      for (let i = 0; i < options.runs; i++) {
        const daemon = await spawnDaemon(home, options.daemonNodeArgs);
        runsMs.push(daemon.readyMs);
        await daemon.stop();
      }
      rows.push({ workspaces: count, runsMs, medianMs: median(runsMs) });
    } finally {
      home.remove();
    }
  }
  const nodeRunsMs: number[] = [];
  for (let i = 0; i < options.runs; i++) {
    const ceiling = await spawnCeiling(1024);
    nodeRunsMs.push(ceiling.readyMs);
    await ceiling.stop();
  }
  return { rows, nodeRunsMs, nodeMedianMs: median(nodeRunsMs) };
}

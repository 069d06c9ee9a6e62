/**
 * 5. What the scheduler costs per workspace, in-process over a real Store (sealed values, WAL,
 * synchronous=FULL as the daemon opens it):
 * - sync: loading every workspace from the database (start-up, and every time the CLI changes it);
 * - a sweep with every credential fresh (nothing due), the cost the cron schedule pays every tick;
 * - a sweep with every credential due, against the hub simulator (a child process), up to dueMax
 *   workspaces: wall time and this process's CPU time, per workspace.
 */
import { performance } from 'node:perf_hooks';
import { systemClock } from '../../src/core/types.js';
import { hubClients } from '../../src/daemon.js';
import type { SimKey } from '../../src/hub-sim/client.js';
import { createLogger } from '../../src/log.js';
import { Broker } from '../../src/scheduler/broker.js';
import { HubConditions } from '../../src/scheduler/hub-conditions.js';
import type { Store } from '../../src/store/store.js';
import { fakeS3, seedWorkspaces, workspaceName } from '../seed.js';
import { BenchHome, type HubSimChild, median, spawnHubSim } from '../support.js';

export interface SweepOptions {
  readonly workspaces: readonly number[];
  /** Sweeps with everything due only up to this many workspaces (each is a hub call). */
  readonly dueMax: number;
  /** How many fresh sweeps to time (the median is reported). */
  readonly freshRepeats: number;
}

export interface SweepRow {
  readonly workspaces: number;
  readonly syncMs: number;
  readonly freshSweepMs: number;
  readonly due: {
    readonly wallMs: number;
    readonly cpuMs: number;
    readonly hubCalls: number;
    readonly failed: number;
  } | null;
}

const MINUTE = 60_000;
/** At info level, as the daemon runs, into a sink: formatting is paid, writing is not. */
const logger = createLogger({ level: 'info', format: 'json', destination: { write: () => {} } });

/** Timers that never fire: only the sweep under measurement renews. */
const inertTimers = { after: () => () => {} };

function broker(store: Store, home: BenchHome): Broker {
  const { config } = home;
  // What the scheduler costs, not how fast the daemon lets itself call one hub: unpaced (the
  // daemon starts at most max(4, 2 × the steady rate) background calls a second per hub, #13).
  const hubConditions = new HubConditions({
    clock: systemClock,
    timers: inertTimers,
    lifetimesOn: () => [],
    backgroundPace: () => Number.MAX_SAFE_INTEGER,
  });
  return new Broker({
    timers: inertTimers,
    hubConditions,
    store,
    hubFor: hubClients(config, Math.random),
    clock: systemClock,
    random: Math.random,
    logger,
    backoff: { initialMs: config.renewal.backoff_initial_ms, maxMs: config.renewal.backoff_max_ms },
    requestWaitMs: config.renewal.request_wait_ms,
  });
}

async function createKeys(sim: HubSimChild, count: number): Promise<SimKey[]> {
  const keys: SimKey[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = Array.from({ length: Math.min(50, count - i) }, (_, j) =>
      sim.client.createKey(workspaceName('sweep', i + j), { expiresDays: 30 }),
    );
    keys.push(...(await Promise.all(batch)));
  }
  return keys;
}

export async function sweepCost(options: SweepOptions): Promise<SweepRow[]> {
  // The simulator only answers due sweeps; none are asked for above dueMax.
  const sim = options.workspaces.some((n) => n <= options.dueMax) ? await spawnHubSim() : null;
  const rows: SweepRow[] = [];
  try {
    for (const count of options.workspaces) {
      const home = BenchHome.create({ hub: { retries: 0 } });
      const store = home.openStore();
      try {
        const withDue = count <= options.dueMax;
        const keys = withDue && sim ? await createKeys(sim, count) : [];
        seedWorkspaces(store, {
          count,
          prefix: 'sweep',
          hubUrl: sim?.url ?? 'http://127.0.0.1:9',
          ...(withDue
            ? {
                apiKey: (_: string, i: number) => ({
                  tokenId: keys[i]!.id,
                  key: keys[i]!.token,
                  expiresAt: Date.parse(keys[i]!.expiry),
                }),
              }
            : {}),
          s3: () => fakeS3(Date.now()),
        });

        const fresh = broker(store, home);
        let t0 = performance.now();
        fresh.sync();
        const syncMs = performance.now() - t0;
        const sweeps: number[] = [];
        for (let i = 0; i < options.freshRepeats; i++) {
          t0 = performance.now();
          await fresh.sweep();
          sweeps.push(performance.now() - t0);
        }

        let due: SweepRow['due'] = null;
        if (withDue && sim) {
          // Past the renewal point (half of the hour) and inside the fresh margin: all due.
          const records = store.listWorkspaces();
          store.transaction(() => {
            for (const w of records) store.saveS3(w.id, fakeS3(Date.now(), { ageMs: 50 * MINUTE }));
          });
          const stale = broker(store, home);
          stale.sync();
          const before = (await sim.client.stats()).total.s3Tokens;
          const cpu = process.cpuUsage();
          t0 = performance.now();
          await stale.sweep();
          const wallMs = performance.now() - t0;
          const used = process.cpuUsage(cpu);
          const hubCalls = (await sim.client.stats()).total.s3Tokens - before;
          const failed = stale.workspaces().filter((s) => s.lastError !== null).length;
          due = { wallMs, cpuMs: (used.user + used.system) / 1000, hubCalls, failed };
        }
        rows.push({ workspaces: count, syncMs, freshSweepMs: median(sweeps), due });
      } finally {
        store.close();
        home.remove();
      }
    }
  } finally {
    await sim?.stop();
  }
  return rows;
}

/**
 * 2. The cold burst: many clients ask at once for a workspace whose credential the daemon does
 * not hold, while the hub takes `hubDelayMs` to answer. Single flight should turn the burst into
 * exactly one hub call.
 *
 * Setting it up so that the burst itself, not the daemon's start-up sweep, makes the call: the
 * workspace is stored with no S3 credential, the hub fails the start-up sweep's one call (500,
 * no retries configured), and the burst comes 3.2 s later, when a request may start a call again
 * but before the retry timer fires. Then the hub is made slow and the burst sent: the first
 * request starts the renewal, the others wait on it.
 *
 * Each request comes on a new connection, so the burst also measures accepting 1000 connections
 * at once (mostly the load generator's and the kernel's work on 2 cores): the same burst is sent
 * again once the credential is held (warm), and to the Node ceiling server, in the same run.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type BurstResult, burst } from '../load.js';
import { seedWorkspaces, workspaceName } from '../seed.js';
import { BenchHome, get, spawnCeiling, spawnDaemon, spawnHubSim } from '../support.js';

export interface ColdBurstOptions {
  readonly requests: number;
  readonly hubDelayMs: number;
  /** Extra node flags for the daemon (e.g. --cpu-prof). */
  readonly daemonNodeArgs?: string[];
}

export interface ColdBurstResult {
  readonly hubDelayMs: number;
  /** s3-tokens calls the hub received during the cold burst. */
  readonly hubCalls: number;
  readonly cold: BurstResult;
  /** The same burst again, now that the daemon holds the credential: the cost of the connections alone. */
  readonly warm: BurstResult;
  /** The same burst against the Node ceiling server, same run. */
  readonly ceiling: BurstResult;
}

export async function coldBurst(options: ColdBurstOptions): Promise<ColdBurstResult> {
  const sim = await spawnHubSim();
  const home = BenchHome.create({
    hub: { retries: 0 },
    // No scheduled sweep during the measurement, and the retry timer of the failed start-up call
    // (15-30 s away) not before the burst: only requests may start a renewal.
    renewal: { sweep_schedule: '0 0 1 1 *', backoff_initial_ms: 60_000, backoff_max_ms: 120_000 },
  });
  try {
    const name = workspaceName('burst', 0);
    const key = await sim.client.createKey(name, { expiresDays: 30 });
    const store = home.openStore();
    const [ws] = seedWorkspaces(store, {
      count: 1,
      prefix: 'burst',
      hubUrl: sim.url,
      apiKey: () => ({ tokenId: key.id, key: key.token, expiresAt: Date.parse(key.expiry) }),
    });
    store.close();
    const s3Calls = async (): Promise<number> => (await sim.client.stats()).workspaces[name]?.s3Tokens ?? 0;

    await sim.client.setFault('error500', { count: 1 });
    const daemon = await spawnDaemon(home, options.daemonNodeArgs);
    try {
      for (let waited = 0; (await s3Calls()) < 1; waited += 10) {
        if (waited > 60_000) throw new Error('bench: the daemon made no start-up call to the hub');
        await sleep(10);
      }
      // The failure is recorded, and a request may start the next call (one per 3 s per workspace, #13).
      await sleep(3_200);
      await sim.client.setFault('slow', { delayMs: options.hubDelayMs });
      const before = await s3Calls();
      const url = `${daemon.url}/v1/workspaces/${name}/credentials`;
      const cold = await burst(url, options.requests, { authorization: ws!.token });
      const hubCalls = (await s3Calls()) - before;
      const warm = await burst(url, options.requests, { authorization: ws!.token });
      const body = await get(url, { authorization: ws!.token });
      const ceilingServer = await spawnCeiling(Buffer.byteLength(body.body));
      try {
        const ceiling = await burst(ceilingServer.url, options.requests, {});
        return { hubDelayMs: options.hubDelayMs, hubCalls, cold, warm, ceiling };
      } finally {
        await ceilingServer.stop();
      }
    } finally {
      await daemon.stop();
    }
  } finally {
    await sim.stop();
    home.remove();
  }
}

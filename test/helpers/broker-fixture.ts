/**
 * An in-process broker over a real SQLite store and a real hub simulator on an ephemeral loopback
 * port, sharing one manual clock: time-dependent behaviour runs in milliseconds.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Test } from 'tap';
import type { Accounts } from '../../src/core/access.js';
import { durations } from '../../src/core/policy.js';
import type { Clock } from '../../src/core/types.js';
import { type StartedHubSimulator, startHubSimulator } from '../../src/hub-sim/app.js';
import { HubSimulatorClient } from '../../src/hub-sim/client.js';
import { createLogger } from '../../src/log.js';
import { Broker } from '../../src/scheduler/broker.js';
import type { Hub } from '../../src/scheduler/hub.js';
import { HubConditions } from '../../src/scheduler/hub-conditions.js';
import { KeyRotator, type RotationOutcome, type RotationStep } from '../../src/scheduler/rotation.js';
import { newClientToken } from '../../src/store/client-tokens.js';
import { openDatabase } from '../../src/store/database.js';
import { sealingKey } from '../../src/store/seal.js';
import { Store } from '../../src/store/store.js';
import { HubClient } from '../../src/upstream/client.js';
import { FakeTimers, flush } from './fake-timers.js';

export class ManualClock implements Clock {
  constructor(private time: number) {}
  now(): number {
    return this.time;
  }
  advance(ms: number): void {
    this.time += ms;
  }
  set(ms: number): void {
    this.time = ms;
  }
}

export interface FixtureOptions {
  readonly s3LifetimeSeconds?: number;
  /** Days the user's first key lives (simulator days). */
  readonly keyDays?: number;
  /** null: the user gave no token id. */
  readonly tokenIdKnown?: boolean;
  readonly rotateBeforeDays?: number;
  readonly requestWaitMs?: number;
  readonly hubTimeoutMs?: number;
  /** How long after a mint the hub may still create the key (default 1 min). */
  readonly lateMintMs?: number;
  readonly onStep?: (step: RotationStep, workspace: string) => void | Promise<void>;
  readonly workspaces?: string[];
  /** Store the first key as this installation's own (named) instead of pasted. */
  readonly firstKeyMinted?: boolean;
  /** Wrap the hub clients (to watch or hold calls). */
  readonly wrapHub?: (hub: Hub) => Hub;
  /** The hub's clock runs this far ahead of the fixture's (negative: behind). */
  readonly hubClockSkewMs?: number;
  readonly random?: () => number;
  /** The machine's users and groups as the broker sees them (group grants, #12). */
  readonly accounts?: () => Accounts;
}

export interface Fixture {
  readonly clock: ManualClock;
  /** The broker's timers: they fire only when a test advances through them. */
  readonly timers: FakeTimers;
  readonly sim: StartedHubSimulator;
  readonly simClient: HubSimulatorClient;
  readonly store: Store;
  readonly broker: Broker;
  readonly rotator: KeyRotator;
  readonly logs: string[];
  /** The broker's per-hub limiters and clock estimates. */
  readonly hubConditions: HubConditions;
  readonly clientTokens: Map<string, string>;
  readonly dbFile: string;
  /** A new broker + rotator over the same database, as after a restart. */
  restart(onStep?: FixtureOptions['onStep']): Fixture;
  /** The daemon's sweep: renewals, then rotations; waits for both to settle. */
  sweep(): Promise<void>;
  settle(): Promise<void>;
  /** Rotate one workspace now (forced or only when due), as the admin route and the sweep do. */
  rotate(workspace?: string, force?: boolean): Promise<RotationOutcome>;
}

export const START = Date.parse('2026-11-01T00:00:00Z');

export async function brokerFixture(t: Test, options: FixtureOptions = {}): Promise<Fixture> {
  const clock = new ManualClock(START);
  const sim = await startHubSimulator({
    clock,
    s3LifetimeSeconds: options.s3LifetimeSeconds ?? 3600,
    clockSkewMs: options.hubClockSkewMs ?? 0,
  });
  t.teardown(() => sim.close());
  const simClient = new HubSimulatorClient(sim.url);
  const dir = t.testdir({});
  const dbFile = join(dir, 'data', 'credd.db');
  const key = sealingKey(randomBytes(32));
  const store = new Store(openDatabase({ file: dbFile, key, create: true }), key, clock);
  t.teardown(() => store.close());
  const logs: string[] = [];
  const logger = createLogger({
    level: 'debug',
    format: 'json',
    destination: new Writable({
      write(chunk, _enc, done) {
        logs.push(String(chunk));
        done();
      },
    }),
  });
  const clientTokens = new Map<string, string>();
  // A first key of our own was minted 30 days before it expires, `keyDays` from now.
  const mintedAgo = options.firstKeyMinted ? (30 - (options.keyDays ?? 30)) * durations.DAY : 0;
  clock.advance(-mintedAgo);
  for (const name of options.workspaces ?? ['ws']) {
    const userKey = await simClient.createKey(name, {
      expiresDays: options.firstKeyMinted ? 30 : (options.keyDays ?? 30),
      name: options.firstKeyMinted ? `minted here for ${name}` : 'made in the web UI',
    });
    const client = newClientToken();
    clientTokens.set(name, client.token);
    store.addWorkspace({
      name,
      hubUrl: sim.url,
      region: 'eu-west-2',
      clientTokenId: client.id,
      clientTokenHash: client.hash,
      apiKey: {
        tokenId: options.tokenIdKnown === false ? null : userKey.id,
        key: userKey.token,
        expiresAt: options.tokenIdKnown === false ? null : Date.parse(userKey.expiry),
        name: options.firstKeyMinted ? `minted here for ${name}` : null,
      },
    });
  }
  clock.advance(mintedAgo);
  const hubs = new Map<string, Hub>();
  // The conditions of the broker built last (a restart builds new ones); the hub clients feed it.
  let conditions: HubConditions | undefined;
  const hubFor = (url: string) => {
    let hub = hubs.get(url);
    if (!hub) {
      const client = new HubClient(url, {
        timeoutMs: options.hubTimeoutMs ?? 2_000,
        retries: 0,
        backoff: { initialMs: 10, maxMs: 20 },
        sleep: async () => {},
        clock,
        onDate: (sample) => conditions?.observeDate(url, sample),
      });
      hub = options.wrapHub ? options.wrapHub(client) : client;
      hubs.set(url, hub);
    }
    return hub;
  };
  const build = (onStep: FixtureOptions['onStep']): Fixture => {
    // What the broker and the rotator share (SchedulerDeps).
    const random = options.random ?? Math.random;
    const deps = { store, hubFor, clock, random, logger, backoff: { initialMs: 5_000, maxMs: 300_000 } };
    const hubConditions: HubConditions = new HubConditions({
      clock,
      timers,
      lifetimesOn: (url) => broker.lifetimesOn(url),
    });
    conditions = hubConditions;
    const broker: Broker = new Broker({
      ...deps,
      requestWaitMs: options.requestWaitMs ?? 700,
      timers,
      hubConditions,
      accounts: options.accounts,
    });
    const rotator = new KeyRotator({
      ...deps,
      settings: {
        enabled: true,
        rotateBeforeMs: (options.rotateBeforeDays ?? 7) * durations.DAY,
        keyLifetimeDays: 30,
        lateMintMs: options.lateMintMs ?? durations.MINUTE,
      },
      keys: broker,
      onStep,
    });
    broker.sync();
    rotator.sync(broker.records());
    const settle = async () => {
      await Promise.all([broker.settle(), rotator.settle()]);
    };
    return {
      clock,
      timers,
      hubConditions,
      sim,
      simClient,
      store,
      broker,
      rotator,
      logs,
      clientTokens,
      dbFile,
      restart: build,
      async sweep() {
        await broker.sweep();
        rotator.sweep(broker.records());
        await settle();
      },
      settle,
      async rotate(workspace = 'ws', force = false) {
        const record = store.getWorkspace(workspace);
        if (!record) return 'failed';
        return (await rotator.rotate(record, force)).outcome;
      },
    };
  };
  // A timer's work is done once no hub call runs and what followed the last one has run.
  const timers: FakeTimers = new FakeTimers(clock, async () => {
    do {
      await conditions?.idle();
      await flush();
    } while ((conditions?.running ?? 0) > 0);
    await flush();
  });
  return build(options.onStep);
}

/** Tokens of a workspace that still work on the hub (neither revoked nor expired). */
export async function liveTokens(f: Fixture, workspace = 'ws') {
  return (await f.simClient.tokens()).filter((k) => k.workspace === workspace && !k.revoked && !k.expired);
}

/**
 * Wiring: the one place (besides the CLI) that puts concrete parts together. Starts the daemon
 * in-process and returns a handle to stop it; `eodh-credd serve` adds signals and readiness.
 */
import { unlinkSync } from 'node:fs';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { Config } from './config/load.js';
import { type RuntimeInfo, runtimeFile } from './config/runtime.js';
import type { HubDateSample } from './core/clock-sense.js';
import { EXIT, UserError } from './core/errors.js';
import { durations } from './core/policy.js';
import { systemTimers, type Timers } from './core/timers.js';
import { type Clock, type Random, systemClock } from './core/types.js';
import { Broker } from './scheduler/broker.js';
import type { Hub, HubFor } from './scheduler/hub.js';
import { HubConditions } from './scheduler/hub-conditions.js';
import { KeyRotator, type RotationStep } from './scheduler/rotation.js';
import { HostPolicy, isLoopbackHost } from './server/hosts.js';
import type { Listener } from './server/listener.js';
import { portInUse } from './server/port-holder.js';
import { startServer } from './server/server.js';
import { serveUnixSocket } from './server/unix-socket.js';
import { countRenewals, createMetrics, type DaemonMetrics } from './service/metrics.js';
import { CredentialsFileSink } from './sinks/aws-credentials-file.js';
import { assertTokenFilesPrivate, ensureAdminToken, ensureMetricsToken } from './store/client-tokens.js';
import { openDatabase } from './store/database.js';
import { ensurePrivateDir, replaceSecretFile } from './store/files.js';
import { acquireProcessLock, type ProcessLock } from './store/lock.js';
import { readMasterKey } from './store/master-key.js';
import { sealingKey } from './store/seal.js';
import { Store } from './store/store.js';
import { accountIdLookup } from './upstream/account-id.js';
import { HubClient } from './upstream/client.js';

/** How often the daemon looks for changes the CLI made (workspace add/remove, key changes). */
const CHANGE_POLL_MS = 1_000;

export interface DaemonOptions {
  readonly config: Config;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly random?: Random;
  /** The timers renewals run on (injected in tests). */
  readonly timers?: Timers;
  /** Called after each sweep (the service status line is refreshed there). */
  readonly onSweep?: ((broker: Broker) => void) | undefined;
}

export interface Daemon {
  readonly url: string;
  readonly port: number;
  readonly broker: Broker;
  readonly store: Store;
  readonly listener: Listener;
  readonly metrics: DaemonMetrics;
  /** The configuration in force (the last one reload() accepted). */
  readonly config: Config;
  /**
   * Apply a new configuration without dropping the listener: log level, sweep schedule, renewal
   * backoff and request wait, rotation settings, hub and STS client settings. Returns the changes
   * that need a restart instead (listen address, data directory, log format).
   */
  reload(next: Config): string[];
  stop(): Promise<void>;
}

export { type RuntimeInfo, runtimeFile } from './config/runtime.js';

export function hubClients(
  config: Config,
  random: Random,
  clockSense?: { clock: Clock; observe: (hubUrl: string, sample: HubDateSample) => void },
): HubFor {
  const clients = new Map<string, Hub>();
  return (hubUrl) => {
    let client = clients.get(hubUrl);
    if (!client) {
      client = new HubClient(hubUrl, {
        timeoutMs: config.hub.timeout_ms,
        retries: config.hub.retries,
        backoff: { initialMs: 500, maxMs: 5_000 },
        random,
        ...(clockSense && { clock: clockSense.clock, onDate: (sample) => clockSense.observe(hubUrl, sample) }),
      });
      clients.set(hubUrl, client);
    }
    return client;
  };
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config, env, logger } = options;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const { paths } = config;
  const host = config.server.host;
  if (!isLoopbackHost(host) && !config.server.allow_non_loopback) {
    throw new UserError(
      `${config.file}: key "server.host": ${host} is not a loopback address; set server.allow_non_loopback = true to serve other machines.`,
      EXIT.CONFIG,
    );
  }
  if (!isLoopbackHost(host))
    logger.warn(
      { host },
      'serving on a non-loopback address: anyone who can reach it and holds a client token gets credentials',
    );

  ensurePrivateDir(paths.dataDir);
  const cleanups: Array<() => void> = [];
  const undo = () => {
    for (const fn of cleanups.reverse()) fn();
  };
  try {
    const lock: ProcessLock = acquireProcessLock(paths.lock);
    cleanups.push(() => lock.release());
    const key = sealingKey(readMasterKey(paths.masterKey, env).key);
    const store = new Store(openDatabase({ file: paths.database, key }), key, clock);
    cleanups.push(() => store.close());
    const adminTokenHash = ensureAdminToken(paths);
    const metricsTokenHash = ensureMetricsToken(paths);
    assertTokenFilesPrivate(paths);

    // What reload() may change. Broker and rotator read their options at each use, so the
    // getters below hand them the values of the configuration in force.
    let current = config;
    // Per hub: the call limiter and the clock estimate its answers feed (#13).
    const timers = options.timers ?? systemTimers;
    const hubConditions: HubConditions = new HubConditions({
      clock,
      timers,
      lifetimesOn: (hubUrl: string): number[] => broker.lifetimesOn(hubUrl),
    });
    const clockSense = { clock, observe: (hubUrl: string, s: HubDateSample) => hubConditions.observeDate(hubUrl, s) };
    let hubs = hubClients(config, random, clockSense);
    let lookupAccountId = accountIdOf(config);
    const tunables = {
      get backoff() {
        return { initialMs: current.renewal.backoff_initial_ms, maxMs: current.renewal.backoff_max_ms };
      },
    };
    // Scraped only once the daemon runs, long after `broker` below exists.
    const metrics = createMetrics({ workspaces: () => broker.workspaces(), clock });
    const hubFor = countRenewals((hubUrl) => hubs(hubUrl), metrics);
    const rotator = new KeyRotator({
      store,
      hubFor,
      clock,
      random,
      logger,
      get backoff() {
        return tunables.backoff;
      },
      get settings() {
        return {
          enabled: current.rotation.enabled,
          rotateBeforeMs: current.rotation.rotate_before_days * durations.DAY,
          keyLifetimeDays: current.rotation.key_lifetime_days,
        };
      },
      onStep: failpoint(env.EODH_CREDD_FAILPOINT),
    });
    // Profiles in AWS credentials files for the tools that cannot use the endpoint (opt-in).
    const sink = new CredentialsFileSink({ logger, clock });
    const broker = new Broker({
      store,
      hubFor,
      clock,
      random,
      logger,
      rotator,
      timers,
      hubConditions,
      get backoff() {
        return tunables.backoff;
      },
      get requestWaitMs() {
        return current.renewal.request_wait_ms;
      },
      get lookupAccountId() {
        return lookupAccountId;
      },
      onRenewed: (w, c) => sink.renewed(w, c),
      onRemoved: (w) => sink.removed(w),
    });
    broker.sync();
    sink.reconcile(broker.workspaces());

    const hosts = new HostPolicy(host);
    let stopped = false;
    const listener = await startServer({
      host,
      port: config.server.port,
      source: broker,
      hosts,
      logger,
      onServed: (workspace) => metrics.served(workspace),
      admin: { tokenHash: adminTokenHash, metricsTokenHash, actions: adminActions(broker) },
      metrics: () => metrics.render(),
    }).catch((err: unknown) => {
      throw portInUse(err, host, config.server.port, config.file);
    });
    cleanups.push(() => void listener.close());
    const local = await serveUnixSocket({ path: paths.socket, handler: listener.handle, logger });
    cleanups.push(() => void local.close());
    const port = listener.port;
    hosts.setPort(port);
    const urlHost = host.includes(':') ? `[${host}]` : host;
    const url = `http://${urlHost === '0.0.0.0' || urlHost === '[::]' ? '127.0.0.1' : urlHost}:${port}`;
    const info: RuntimeInfo = { pid: process.pid, url, port };
    replaceSecretFile(runtimeFile(config), JSON.stringify(info));
    cleanups.push(() => unlinkSafe(runtimeFile(config)));

    const sweep = (): Promise<void> =>
      broker
        .sweep()
        .catch((err: unknown) => logger.error({ err }, 'sweep failed'))
        .then(() => {
          try {
            options.onSweep?.(broker);
          } catch (err) {
            logger.error({ err }, 'after-sweep hook failed');
          }
        });
    const schedule = (expression: string): ScheduledTask =>
      cron.schedule(expression, sweep, { noOverlap: true, name: 'sweep' });
    // The schedule takes over once the first sweep (started below) is done: node-cron's first use
    // loads time-zone data (~40 ms), which need not delay the first answers.
    let task: ScheduledTask | undefined;
    const armSchedule = () => {
      if (!stopped && !task) task = schedule(current.renewal.sweep_schedule);
    };
    cleanups.push(() => void task?.destroy());
    let seenVersion = store.dataVersion();
    const poll = setInterval(() => {
      const version = store.dataVersion();
      if (version === seenVersion) return;
      seenVersion = version;
      broker.sync();
      sink.reconcile(broker.workspaces());
      void sweep();
    }, CHANGE_POLL_MS);
    poll.unref();
    cleanups.push(() => clearInterval(poll));
    void sweep().then(armSchedule);
    logger.info({ url, workspaces: broker.workspaces().length }, 'eodh-credd serving');

    return {
      url,
      port,
      broker,
      store,
      listener,
      metrics,
      get config() {
        return current;
      },
      reload(next) {
        const prev = current;
        const restart: string[] = [];
        if (next.server.host !== prev.server.host || next.server.port !== prev.server.port) {
          restart.push(
            `server.host/server.port (${next.server.host}:${next.server.port}): restart eodh-credd to listen there`,
          );
        }
        if (next.server.allow_non_loopback !== prev.server.allow_non_loopback)
          restart.push('server.allow_non_loopback: restart eodh-credd to apply it');
        if (next.paths.dataDir !== prev.paths.dataDir)
          restart.push(`storage.data_dir (${next.paths.dataDir}): restart eodh-credd to use it`);
        if (next.log.format !== prev.log.format) restart.push('log.format: restart eodh-credd to apply it');
        // What cannot change live stays as it was, so `current` always says what is in force.
        current = {
          ...next,
          server: prev.server,
          storage: prev.storage,
          paths: prev.paths,
          log: { ...next.log, format: prev.log.format },
        };
        logger.level = next.log.level;
        if (next.renewal.sweep_schedule !== prev.renewal.sweep_schedule && !stopped && task) {
          void task.destroy();
          task = schedule(next.renewal.sweep_schedule);
        }
        if (JSON.stringify(next.hub) !== JSON.stringify(prev.hub)) hubs = hubClients(current, random, clockSense);
        if (JSON.stringify(next.sts) !== JSON.stringify(prev.sts)) lookupAccountId = accountIdOf(current);
        logger.info(
          { file: next.file, logLevel: next.log.level, schedule: next.renewal.sweep_schedule },
          'configuration reloaded',
        );
        for (const note of restart) logger.warn(`configuration change not applied: ${note}`);
        return restart;
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await task?.destroy();
        clearInterval(poll);
        broker.stop();
        await Promise.all([listener.close(), local.close()]);
        await Promise.race([broker.settle(), new Promise((r) => setTimeout(r, 2_000).unref())]);
        undo();
      },
    };
  } catch (err) {
    undo();
    throw err;
  }
}

function accountIdOf(config: Config) {
  return config.sts.verify
    ? accountIdLookup({ endpoint: config.sts.endpoint, region: config.sts.region, timeoutMs: config.sts.timeout_ms })
    : undefined;
}

function adminActions(broker: Broker) {
  return {
    async refresh(workspace: string) {
      if (!broker.slot(workspace)) return { ok: false, error: `no workspace "${workspace}"` };
      await broker.renew(workspace, true);
      const slot = broker.slot(workspace);
      return slot?.lastError ? { ok: false, error: slot.lastError.message } : { ok: true };
    },
    async rotate(workspace: string) {
      const slot = broker.slot(workspace);
      if (!slot) return { ok: false, error: `no workspace "${workspace}"` };
      const outcome = await broker.rotate(workspace, true);
      if (outcome === 'rotated') return { ok: true };
      if (outcome === 'needs_user')
        return {
          ok: false,
          error:
            'the hub does not let the API key create its successor; add a new key with "eodh-credd workspace set-key"',
        };
      return { ok: false, error: slot.rotation.lastError ?? `rotation ${outcome}` };
    },
    snapshot: () => broker.snapshot(),
  };
}

/**
 * Fault injection for the crash tests: EODH_CREDD_FAILPOINT=rotation:<step> kills the process
 * with SIGKILL right after that rotation step, the way a power cut would.
 */
function failpoint(spec: string | undefined): ((step: RotationStep) => void) | undefined {
  const wanted = spec?.startsWith('rotation:') ? spec.slice('rotation:'.length) : undefined;
  if (!wanted) return undefined;
  return (step) => {
    if (step === wanted) process.kill(process.pid, 'SIGKILL');
  };
}

function unlinkSafe(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // already gone
  }
}

/**
 * Wiring: the one place (besides the CLI) that puts concrete parts together. Starts the daemon
 * in-process and returns a handle to stop it; `eodh-credd serve` adds signals and readiness.
 * startDaemon reads as its parts: open the store, build the broker, build the server, watch for
 * changes, arm the timers.
 */
import { createHash } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { AccountsCache } from './config/accounts.js';
import { hubClientOptions } from './config/hub-client.js';
import type { Config } from './config/load.js';
import { type RuntimeInfo, runtimeFile } from './config/runtime.js';
import type { HubDateSample } from './core/clock-sense.js';
import { EXIT, UserError } from './core/errors.js';
import { fanOut } from './core/events.js';
import { durations } from './core/policy.js';
import type { CredentialSource } from './core/source.js';
import { KEY_WARNING_MS, type WorkspaceSnapshot, workspaceSnapshot } from './core/status-view.js';
import { systemTimers, type Timers } from './core/timers.js';
import { type Clock, type Random, systemClock } from './core/types.js';
import { type ChangeWatch, watchForChanges } from './daemon/changes.js';
import { reloadPlan } from './daemon/reload-plan.js';
import { Broker } from './scheduler/broker.js';
import type { Hub, HubFor } from './scheduler/hub.js';
import { HubConditions } from './scheduler/hub-conditions.js';
import { KeyRotator, type RotationStep } from './scheduler/rotation.js';
import { workspaceFacts } from './scheduler/status.js';
import { AuditTrail } from './server/audit.js';
import { HostPolicy, isLoopbackHost } from './server/hosts.js';
import { portInUse } from './server/port-holder.js';
import { type Listener, startServer } from './server/server.js';
import { forgetInheritedSockets, inheritedSockets } from './server/socket-activation.js';
import { serveUnixSocket } from './server/unix-socket.js';
import { createMetrics, type DaemonMetrics } from './service/metrics.js';
import { CredentialsFileSink } from './sinks/aws-credentials-file.js';
import { assertTokenFilesPrivate, ensureAdminToken, ensureMetricsToken } from './store/client-tokens.js';
import { openDatabase } from './store/database.js';
import { ensurePrivateDir, replaceSecretFile } from './store/files.js';
import { acquireProcessLock } from './store/lock.js';
import { readMasterKey } from './store/master-key.js';
import { sealingKey } from './store/seal.js';
import { Store } from './store/store.js';
import { accountIdLookup } from './upstream/account-id.js';
import { HubClient } from './upstream/client.js';

const delay = (ms: number) => sleep(ms, undefined, { ref: false });

/** On stop, hub calls in flight get this long to finish before they are aborted (#13). */
const STOP_GRACE_MS = 2_500;
/** After the abort, how long the abandoned calls get to unwind (serve.ts gives a stop 5 s in all). */
const UNWIND_MS = 1_000;

export interface DaemonOptions {
  readonly config: Config;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly random?: Random;
  /** The timers renewals run on (injected in tests). */
  readonly timers?: Timers;
  /**
   * Called after each sweep and whenever a workspace was renewed, failed, rotated or removed: the
   * service status line is refreshed there.
   */
  readonly onChange?: (() => void) | undefined;
}

/** How long after a mint request times out the hub may still create the key: its own timeout, and then some. */
export function lateMintMs(config: Config): number {
  return config.hub.timeout_ms + config.hub.late_answer_margin_ms;
}

export interface Daemon {
  readonly url: string;
  readonly port: number;
  readonly broker: Broker;
  readonly rotator: KeyRotator;
  readonly store: Store;
  /** Every workspace as `status` shows it (the one attention rule). */
  snapshots(): WorkspaceSnapshot[];
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

/** What the daemon's hub clients share: the stop signal, and where each answer's Date goes (#13). */
export interface HubClientsContext {
  readonly signal?: AbortSignal;
  readonly clockSense?: { readonly clock: Clock; readonly observe: (hubUrl: string, sample: HubDateSample) => void };
}

export function hubClients(config: Config, random: Random, context: HubClientsContext = {}): HubFor {
  const clients = new Map<string, Hub>();
  const { signal, clockSense } = context;
  return (hubUrl) => {
    let client = clients.get(hubUrl);
    if (!client) {
      client = new HubClient(
        hubUrl,
        hubClientOptions(config, {
          random,
          ...(signal ? { signal } : {}),
          ...(clockSense ? { clock: clockSense.clock, onDate: (sample) => clockSense.observe(hubUrl, sample) } : {}),
        }),
      );
      clients.set(hubUrl, client);
    }
    return client;
  };
}

/** Undo steps, run last-first: what a failed start or a stop releases. */
class Cleanups {
  private readonly steps: Array<() => void> = [];
  add(step: () => void): void {
    this.steps.push(step);
  }
  run(): void {
    for (const step of this.steps.splice(0).reverse()) step();
  }
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config, env, logger } = options;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  checkListenAddress(config, logger);
  const inherited = inheritedSockets(env, process.pid);
  if (inherited.ignored) logger.warn(`listening sockets passed by systemd ignored: ${inherited.ignored}`);
  forgetInheritedSockets(process.env);
  ensurePrivateDir(config.paths.dataDir);
  const cleanups = new Cleanups();
  try {
    const { store, adminTokenHash, metricsTokenHash } = openStore(config, env, clock, cleanups);
    // Per hub: the call limiter and the clock estimate its answers feed (#13).
    const timers = options.timers ?? systemTimers;
    const hubConditions = new HubConditions({ clock, timers, lifetimesOn: (hubUrl) => broker.lifetimesOn(hubUrl) });
    const live = new LiveSettings(config, random, {
      clock,
      observe: (hubUrl, sample) => hubConditions.observeDate(hubUrl, sample),
    });
    const backups = new AutomaticBackups(store, config, logger);
    const onChange = () => {
      try {
        options.onChange?.();
      } catch (err) {
        logger.error({ err }, 'change hook failed');
      }
    };
    const { broker, rotator, metrics, sink, snapshots } = buildBroker({
      store,
      live,
      clock,
      random,
      logger,
      env,
      backups,
      timers,
      hubConditions,
      onChange,
    });
    // A CLI change found at a sweep is applied before it (the safety net for a missed notification).
    const sweep = (): Promise<void> => {
      try {
        changes.check();
      } catch (err) {
        logger.error({ err }, 'checking for changes from the CLI failed');
      }
      return broker
        .sweep()
        .then(() => rotator.sweep(broker.records()))
        .catch((err: unknown) => logger.error({ err }, 'sweep failed'))
        .then(() => onChange());
    };
    const applyChanges = () => {
      load({ broker, rotator, sink });
      backups.request();
      void sweep();
    };
    const changes = watchForChanges({
      paths: config.paths,
      dataVersion: () => store.dataVersion(),
      apply: applyChanges,
      logger,
    });
    cleanups.add(() => changes.close());
    const server = await buildServer({
      config,
      broker,
      rotator,
      snapshots,
      metrics,
      adminTokenHash,
      metricsTokenHash,
      inheritedFds: inherited.fds,
      logger,
      changes,
      cleanups,
    });
    const sweeps = armSweeps(live, sweep, installationFraction(store.installId()));
    cleanups.add(() => sweeps.stop());
    cleanups.add(() => broker.stop());
    logger.info({ url: server.url, workspaces: broker.workspaces().length }, 'eodh-credd serving');

    let stopped = false;
    return {
      url: server.url,
      port: server.port,
      broker,
      rotator,
      store,
      snapshots,
      listener: server.listener,
      metrics,
      get config() {
        return live.current;
      },
      reload(next) {
        const plan = reloadPlan(live.current, next);
        live.apply(plan);
        logger.level = next.log.level;
        if (plan.sweepScheduleChanged && !stopped) sweeps.reschedule();
        logger.info(
          { file: next.file, logLevel: next.log.level, schedule: next.renewal.sweep_schedule },
          'configuration reloaded',
        );
        for (const note of plan.restart) logger.warn(`configuration change not applied: ${note}`);
        return [...plan.restart];
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        sweeps.stop();
        broker.stop();
        changes.close();
        // Requests and hub calls in flight may finish; a hub call still running after the grace is
        // abandoned (its request gets its error), so a stop never waits on a slow hub.
        const closing = Promise.all([server.listener.close(), server.local.close()]);
        const finished = Promise.all([closing, broker.settle(), rotator.settle()]);
        await Promise.race([finished, delay(STOP_GRACE_MS)]);
        live.abortHubCalls();
        await Promise.race([finished, delay(UNWIND_MS)]);
        await backups.settle();
        cleanups.run();
      },
    };
  } catch (err) {
    cleanups.run();
    throw err;
  }
}

function checkListenAddress(config: Config, logger: Logger): void {
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
}

/** The data directory's lock, the master key, the database, the admin token. */
function openStore(config: Config, env: DaemonOptions['env'], clock: Clock, cleanups: Cleanups) {
  const { paths } = config;
  const lock = acquireProcessLock(paths.lock);
  cleanups.add(() => lock.release());
  const key = sealingKey(readMasterKey(paths.masterKey, env).key);
  const store = new Store(openDatabase({ file: paths.database, key }), key, clock);
  cleanups.add(() => store.close());
  const adminTokenHash = ensureAdminToken(paths);
  const metricsTokenHash = ensureMetricsToken(paths);
  assertTokenFilesPrivate(paths);
  return { store, adminTokenHash, metricsTokenHash };
}

/**
 * What reload() may change. Broker and rotator read their options at each use, so the getters in
 * buildBroker hand them the values of the configuration in force.
 */
class LiveSettings {
  current: Config;
  hubs: HubFor;
  lookupAccountId: ReturnType<typeof accountIdOf>;
  private readonly stopping = new AbortController();
  private readonly context: HubClientsContext;

  constructor(
    config: Config,
    private readonly random: Random,
    clockSense: HubClientsContext['clockSense'],
  ) {
    this.current = config;
    this.context = { signal: this.stopping.signal, ...(clockSense ? { clockSense } : {}) };
    this.hubs = hubClients(config, random, this.context);
    this.lookupAccountId = accountIdOf(config);
  }

  get backoff() {
    return { initialMs: this.current.renewal.backoff_initial_ms, maxMs: this.current.renewal.backoff_max_ms };
  }

  apply(plan: ReturnType<typeof reloadPlan>): void {
    this.current = plan.config;
    if (plan.hubChanged) this.hubs = hubClients(this.current, this.random, this.context);
    if (plan.stsChanged) this.lookupAccountId = accountIdOf(this.current);
  }

  abortHubCalls(): void {
    this.stopping.abort();
  }
}

/** Broker, rotator and their listeners: metrics, the credentials-file sink, the audit trail, backups. */
function buildBroker(parts: {
  store: Store;
  live: LiveSettings;
  clock: Clock;
  random: Random;
  logger: Logger;
  env: DaemonOptions['env'];
  backups: AutomaticBackups;
  timers: Timers;
  hubConditions: HubConditions;
  onChange: () => void;
}) {
  const { store, live, clock, random, logger, backups } = parts;
  // Scraped only once the daemon runs, long after `broker` below exists.
  const metrics = createMetrics({
    workspaces: () => broker.workspaces(),
    clock,
    needingAttention: () => snapshots().filter((s) => s.attention.length > 0).length,
  });
  const hubFor: HubFor = (hubUrl) => live.hubs(hubUrl);
  // Profiles in AWS credentials files for the tools that cannot use the endpoint (opt-in).
  const sink = new CredentialsFileSink({ logger, clock });
  // After each key this installation minted replaces the old one, a backup (#13).
  const backupOnRotation = { rotated: () => backups.request() };
  const { onChange } = parts;
  const statusRefresh = { renewed: onChange, failed: onChange, rotated: onChange, removed: onChange };
  const events = fanOut([metrics, sink, new AuditTrail(logger), backupOnRotation, statusRefresh], (event, err) =>
    logger.error({ err, event }, 'a workspace event listener failed'),
  );
  const rotator: KeyRotator = new KeyRotator({
    store,
    hubFor,
    clock,
    random,
    logger,
    get backoff() {
      return live.backoff;
    },
    get settings() {
      return {
        enabled: live.current.rotation.enabled,
        rotateBeforeMs: live.current.rotation.rotate_before_days * durations.DAY,
        keyLifetimeDays: live.current.rotation.key_lifetime_days,
        lateMintMs: lateMintMs(live.current),
      };
    },
    keys: { useActiveKey: (workspace) => broker.useActiveKey(workspace) },
    events,
    onStep: failpoint(parts.env.EODH_CREDD_FAILPOINT),
  });
  // The account files, for group grants (#12): re-read when they change, looked at every 2 s at most.
  const accounts = new AccountsCache(clock);
  const broker: Broker = new Broker({
    store,
    hubFor,
    clock,
    random,
    logger,
    events,
    accounts: () => accounts.current(),
    timers: parts.timers,
    hubConditions: parts.hubConditions,
    get backoff() {
      return live.backoff;
    },
    get requestWaitMs() {
      return live.current.renewal.request_wait_ms;
    },
    get lookupAccountId() {
      return live.lookupAccountId;
    },
  });
  const snapshots = (): WorkspaceSnapshot[] => {
    const now = clock.now();
    const current = live.current;
    const policy = { rotationEnabled: current.rotation.enabled, keyWarningMs: KEY_WARNING_MS };
    const factsPolicy = {
      rotationEnabled: current.rotation.enabled,
      rotateBeforeDays: current.rotation.rotate_before_days,
    };
    return broker
      .views()
      .map((renewal) =>
        workspaceSnapshot(
          workspaceFacts(store, renewal.record, { renewal, rotation: rotator.view(renewal.record) }, factsPolicy),
          now,
          policy,
        ),
      );
  };
  load({ broker, rotator, sink });
  return { broker, rotator, metrics, sink, snapshots };
}

/** Bring broker, rotator and sink in line with the database. */
function load(parts: { broker: Broker; rotator: KeyRotator; sink: CredentialsFileSink }): void {
  parts.broker.sync();
  parts.rotator.sync(parts.broker.records());
  parts.sink.reconcile(parts.broker.workspaces());
}

/**
 * The broker as the server sees it, except that a request naming a workspace or token the
 * daemon does not know first checks whether the CLI changed the database (a missed change
 * notification costs one refused-then-retried lookup, never a wrong answer).
 */
function sourceFor(broker: Broker, changes: ChangeWatch): CredentialSource {
  return {
    authenticate(workspace, digest) {
      const result = broker.authenticate(workspace, digest);
      if (result.ok || !changes.check()) return result;
      return broker.authenticate(workspace, digest);
    },
    freshCredentials: (workspace) => broker.freshCredentials(workspace),
    credentials: (workspace) => broker.credentials(workspace),
    apiKey: (workspace) => broker.apiKey(workspace),
    allowedUids: (workspace) => broker.allowedUids(workspace),
  };
}

async function buildServer(parts: {
  config: Config;
  broker: Broker;
  rotator: KeyRotator;
  snapshots: () => WorkspaceSnapshot[];
  metrics: DaemonMetrics;
  adminTokenHash: Buffer;
  metricsTokenHash: Buffer;
  inheritedFds: readonly number[];
  logger: Logger;
  changes: ChangeWatch;
  cleanups: Cleanups;
}) {
  const { config, broker, metrics, logger, cleanups } = parts;
  const host = config.server.host;
  const hosts = new HostPolicy(host);
  const listener = await startServer({
    host,
    port: config.server.port,
    inheritedFds: parts.inheritedFds,
    hosts,
    source: sourceFor(broker, parts.changes),
    logger,
    onServed: (workspace) => metrics.served(workspace),
    admin: {
      tokenHash: parts.adminTokenHash,
      metricsTokenHash: parts.metricsTokenHash,
      actions: adminActions(broker, parts.rotator, parts.snapshots),
    },
    metrics: () => metrics.render(),
  }).catch((err: unknown) => {
    throw portInUse(err, host, config.server.port, config.file);
  });
  cleanups.add(() => void listener.close());
  const local = await serveUnixSocket({ path: config.paths.socket, server: listener.server, logger });
  cleanups.add(() => void local.close());
  const port = listener.port;
  // With sockets from systemd, what they are bound to is what we serve, whatever the config says.
  const servedHost = parts.inheritedFds.length > 0 ? (listener.addresses[0]?.address ?? host) : host;
  if (!listener.addresses.every((a) => isLoopbackHost(a.address)) && !config.server.allow_non_loopback) {
    throw new UserError(
      `the sockets passed by systemd include a non-loopback address (${listener.addresses.map((a) => a.address).join(', ')}); set server.allow_non_loopback = true in ${config.file} to serve other machines.`,
      EXIT.CONFIG,
    );
  }
  hosts.setPort(port, servedHost);
  const urlHost = servedHost.includes(':') ? `[${servedHost}]` : servedHost;
  const url = `http://${urlHost === '0.0.0.0' || urlHost === '[::]' ? '127.0.0.1' : urlHost}:${port}`;
  const info: RuntimeInfo = { pid: process.pid, url, port };
  replaceSecretFile(runtimeFile(config), JSON.stringify(info));
  cleanups.add(() => unlinkSafe(runtimeFile(config)));
  return { listener, local, url, port };
}

/** The longest an installation's sweeps are shifted into the schedule's period. */
const MAX_SWEEP_OFFSET_MS = 5 * durations.MINUTE;

/** A fraction in [0, 1) fixed for this installation (from its install id): where in each period it sweeps. */
export function installationFraction(installId: string): number {
  return createHash('sha256').update(installId).digest().readUInt32BE(0) / 2 ** 32;
}

/**
 * The safety-net sweep (#13). Each workspace renews on its own timer, so the cron schedule only
 * catches what a timer missed (a suspended laptop, a lost change notification) and runs rotation.
 * Every installation sweeps at its own offset into the schedule's period (at most 5 min), so
 * installations behind one hub, all on the default schedule, never sweep in the same second.
 * The schedule takes over once the first sweep (started here) is done: node-cron's first use loads
 * time-zone data (README, Benchmarks), which need not delay the first answers.
 */
function armSweeps(live: LiveSettings, sweep: () => Promise<void>, fraction: number) {
  let task: ScheduledTask | undefined;
  let stopped = false;
  let waiting: NodeJS.Timeout | undefined;
  const schedule = () => {
    let offsetMs = 0;
    const offsetSweep = () =>
      new Promise<void>((resolve) => {
        waiting = setTimeout(() => void sweep().finally(resolve), offsetMs);
        waiting.unref();
      });
    task = cron.schedule(live.current.renewal.sweep_schedule, offsetSweep, { noOverlap: true, name: 'sweep' });
    const [first, second] = task.getNextRuns(2);
    const periodMs = first && second ? second.getTime() - first.getTime() : 0;
    offsetMs = Math.floor(fraction * Math.min(periodMs, MAX_SWEEP_OFFSET_MS));
  };
  void sweep().then(() => {
    if (!stopped && !task) schedule();
  });
  const cancel = () => {
    clearTimeout(waiting);
    void task?.destroy();
    task = undefined;
  };
  return {
    reschedule() {
      if (!task) return;
      cancel();
      schedule();
    },
    stop() {
      stopped = true;
      cancel();
    },
  };
}

/**
 * After each key change, a backup into the data directory's backups/ (the newest three kept, #13).
 * Requests during a backup coalesce into one more afterwards; a failed backup is logged, never fatal.
 */
class AutomaticBackups {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly store: Store,
    private readonly config: Config,
    private readonly logger: Logger,
  ) {}

  request(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.store
      .takeAutomaticBackup(this.config.paths)
      .then(
        (file) => this.logger.info({ file }, 'automatic backup written'),
        (err: unknown) => this.logger.error({ err }, 'automatic backup failed'),
      )
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.request();
        }
      });
  }

  async settle(): Promise<void> {
    this.again = false;
    await this.running;
  }
}

function accountIdOf(config: Config) {
  return config.sts.verify
    ? accountIdLookup({ endpoint: config.sts.endpoint, region: config.sts.region, timeoutMs: config.sts.timeout_ms })
    : undefined;
}

function adminActions(broker: Broker, rotator: KeyRotator, snapshots: () => WorkspaceSnapshot[]) {
  return {
    async refresh(workspace: string) {
      const outcome = await broker.renew(workspace, true);
      if (outcome.kind === 'renewed') return { ok: true };
      if (outcome.kind === 'failed') return { ok: false, error: outcome.message };
      return {
        ok: false,
        error: outcome.reason === 'unknown_workspace' ? `no workspace "${workspace}"` : outcome.reason,
      };
    },
    async rotate(workspace: string) {
      const record = broker.slot(workspace)?.record;
      if (!record) return { ok: false, error: `no workspace "${workspace}"` };
      const result = await rotator.rotate(record, true);
      if (result.outcome === 'rotated') return { ok: true };
      return { ok: false, error: result.message ?? `rotation ${result.outcome}` };
    },
    snapshot: () => snapshots(),
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

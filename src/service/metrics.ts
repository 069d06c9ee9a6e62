/**
 * Prometheus metrics for GET /metrics (admin token only). Counting is a Map update in memory, so
 * the request path costs no I/O and no prom-client; gauges about expiry are computed when scraped,
 * from the broker's memory.
 *
 * prom-client is loaded at the first scrape, not at start-up (importing it costs tens of
 * milliseconds and several MiB that a daemon nobody scrapes never needs). Its metrics then read the
 * in-memory numbers in collect(). Each daemon builds its own registry (no prom-client global), so
 * several daemons in one process (tests) never mix their numbers.
 */
import type { Registry } from 'prom-client';
import type { EventWorkspace, WorkspaceEvents } from '../core/events.js';
import type { Clock } from '../core/types.js';

/** The little the gauges read from each workspace. */
export interface MetricsWorkspace {
  readonly record: { readonly name: string };
  readonly current?: { readonly expiresAt: number } | undefined;
  readonly apiKey?: { readonly expiresAt: number | null } | undefined;
}

/** Counts what the broker and the rotator report (a WorkspaceEvents listener) and what is served. */
export interface DaemonMetrics extends Required<Pick<WorkspaceEvents, 'renewed' | 'failed' | 'rotated'>> {
  served(workspace: string): void;
  renewed(workspace: EventWorkspace): void;
  failed(workspace: EventWorkspace, failure: { readonly code: string }): void;
  rotated(workspace: EventWorkspace): void;
  render(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsOptions {
  readonly workspaces: () => readonly MetricsWorkspace[];
  readonly clock: Clock;
  /** Process metrics (memory, CPU, event loop); on by default. */
  readonly processMetrics?: boolean;
  /** How many workspaces need the user, by the status rule (src/core/status-view.ts). */
  readonly needingAttention?: (() => number) | undefined;
}

/** prom-client's Registry.PROMETHEUS_CONTENT_TYPE, known without loading prom-client. */
const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The numbers counted so far; Maps keep first-seen order, which the scrape keeps too. */
interface Counts {
  readonly served: Map<string, number>;
  readonly renewals: Map<string, number>;
  readonly rotations: Map<string, number>;
  /** Keyed by workspace and reason together. */
  readonly failures: Map<string, { readonly workspace: string; readonly reason: string; count: number }>;
}

export function createMetrics(options: MetricsOptions): DaemonMetrics {
  const counts: Counts = { served: new Map(), renewals: new Map(), rotations: new Map(), failures: new Map() };
  const add = (map: Map<string, number>, workspace: string) => map.set(workspace, (map.get(workspace) ?? 0) + 1);
  let registry: Promise<Registry> | undefined;

  return {
    served: (workspace) => add(counts.served, workspace),
    renewed: (workspace) => add(counts.renewals, workspace.name),
    rotated: (workspace) => add(counts.rotations, workspace.name),
    failed({ name: workspace }, { code: reason }) {
      const key = JSON.stringify([workspace, reason]);
      const entry = counts.failures.get(key);
      if (entry) entry.count++;
      else counts.failures.set(key, { workspace, reason, count: 1 });
    },
    async render() {
      // Built once; a failed load is retried at the next scrape.
      registry ??= buildRegistry(counts, options).catch((err: unknown) => {
        registry = undefined;
        throw err;
      });
      return (await registry).metrics();
    },
    contentType: PROMETHEUS_CONTENT_TYPE,
  };
}

async function buildRegistry(counts: Counts, options: MetricsOptions): Promise<Registry> {
  const prom = await import('prom-client');
  const registry = new prom.Registry();
  const prefix = 'eodh_credd_';
  // Default process metrics start at the first scrape: CPU time and memory are cumulative or
  // current anyway, but the GC and event-loop histograms only count from then.
  if (options.processMetrics !== false) prom.collectDefaultMetrics({ register: registry });

  const perWorkspace = (name: string, help: string, map: ReadonlyMap<string, number>) =>
    new prom.Counter({
      name: `${prefix}${name}`,
      help,
      labelNames: ['workspace'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [workspace, count] of map) this.inc({ workspace }, count);
      },
    });
  perWorkspace('credentials_served_total', 'S3 credentials handed to clients, per workspace.', counts.served);
  perWorkspace('renewals_total', 'Successful S3 credential renewals from the hub, per workspace.', counts.renewals);
  perWorkspace(
    'api_key_rotations_total',
    'API keys replaced by one this installation minted, per workspace.',
    counts.rotations,
  );
  new prom.Counter({
    name: `${prefix}renewal_failures_total`,
    help: 'Failed S3 credential renewals, per workspace and reason (unauthorized, network, ...).',
    labelNames: ['workspace', 'reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { workspace, reason, count } of counts.failures.values()) this.inc({ workspace, reason }, count);
    },
  });
  const seconds = (ms: number) => Math.round((ms - options.clock.now()) / 100) / 10;
  new prom.Gauge({
    name: `${prefix}s3_credential_expiry_seconds`,
    help: 'Seconds until the held S3 credential expires (negative once expired), per workspace.',
    labelNames: ['workspace'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const w of options.workspaces())
        if (w.current) this.set({ workspace: w.record.name }, seconds(w.current.expiresAt));
    },
  });
  new prom.Gauge({
    name: `${prefix}api_key_expiry_seconds`,
    help: 'Seconds until the active API key expires, per workspace (absent when the hub did not say).',
    labelNames: ['workspace'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const w of options.workspaces()) {
        const at = w.apiKey?.expiresAt;
        if (at != null) this.set({ workspace: w.record.name }, seconds(at));
      }
    },
  });
  const needingAttention = options.needingAttention;
  if (needingAttention) {
    new prom.Gauge({
      name: `${prefix}workspaces_needing_attention`,
      help: 'Workspaces that need the user (the rule `eodh-credd status` exits 2 on).',
      registers: [registry],
      collect() {
        this.set(needingAttention());
      },
    });
  }
  new prom.Gauge({
    name: `${prefix}workspaces`,
    help: 'Workspaces the daemon serves.',
    registers: [registry],
    collect() {
      this.set(options.workspaces().length);
    },
  });
  return registry;
}

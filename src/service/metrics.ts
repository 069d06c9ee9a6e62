/**
 * Prometheus metrics for GET /metrics (admin token only). Counters are plain in-memory
 * increments, so counting on the request path costs no I/O; gauges about expiry are computed when
 * scraped, from the broker's memory.
 *
 * Each daemon has its own registry (no prom-client global), so several daemons in one process
 * (tests) never mix their numbers.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { CredentialSource } from '../core/source.js';
import type { Clock } from '../core/types.js';
import type { Hub, HubFor } from '../scheduler/hub.js';
import { describeFailure } from '../scheduler/hub.js';

/** The little the gauges read from each workspace. */
export interface MetricsWorkspace {
  readonly record: { readonly name: string };
  readonly current?: { readonly expiresAt: number } | undefined;
  readonly apiKey?: { readonly expiresAt: number | null } | undefined;
}

export interface DaemonMetrics {
  readonly registry: Registry;
  served(workspace: string): void;
  renewed(workspace: string): void;
  failed(workspace: string, reason: string): void;
  render(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsOptions {
  readonly workspaces: () => readonly MetricsWorkspace[];
  readonly clock: Clock;
  /** Process metrics (memory, CPU, event loop); on by default. */
  readonly processMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions): DaemonMetrics {
  const registry = new Registry();
  const prefix = 'eodh_credd_';
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });

  const served = new Counter({
    name: `${prefix}credentials_served_total`,
    help: 'S3 credentials handed to clients, per workspace.',
    labelNames: ['workspace'] as const,
    registers: [registry],
  });
  const renewals = new Counter({
    name: `${prefix}renewals_total`,
    help: 'Successful S3 credential renewals from the hub, per workspace.',
    labelNames: ['workspace'] as const,
    registers: [registry],
  });
  const failures = new Counter({
    name: `${prefix}renewal_failures_total`,
    help: 'Failed S3 credential renewals, per workspace and reason (unauthorized, network, ...).',
    labelNames: ['workspace', 'reason'] as const,
    registers: [registry],
  });
  const seconds = (ms: number) => Math.round((ms - options.clock.now()) / 100) / 10;
  new Gauge({
    name: `${prefix}s3_credential_expiry_seconds`,
    help: 'Seconds until the held S3 credential expires (negative once expired), per workspace.',
    labelNames: ['workspace'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const w of options.workspaces()) if (w.current) this.set({ workspace: w.record.name }, seconds(w.current.expiresAt));
    },
  });
  new Gauge({
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
  new Gauge({
    name: `${prefix}workspaces`,
    help: 'Workspaces the daemon serves.',
    registers: [registry],
    collect() {
      this.set(options.workspaces().length);
    },
  });

  return {
    registry,
    served: (workspace) => served.inc({ workspace }),
    renewed: (workspace) => renewals.inc({ workspace }),
    failed: (workspace, reason) => failures.inc({ workspace, reason }),
    render: () => registry.metrics(),
    contentType: registry.contentType,
  };
}

/**
 * `target` with some methods replaced; everything else (including members added to the interface
 * later) still reaches the target, bound to it.
 */
function overriding<T extends object>(target: T, overrides: Partial<T>): T {
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get(object, property) {
      if (Object.hasOwn(overrides, property)) return overrides[property as keyof T];
      const value: unknown = Reflect.get(object, property, object);
      if (typeof value !== 'function') return value;
      // Bound once: the request path asks for authenticate() on every request.
      let fn = bound.get(property);
      if (!fn) bound.set(property, (fn = value.bind(object)));
      return fn;
    },
  });
}

/** The same source, counting each credential it hands out. */
export function countServed<S extends CredentialSource>(source: S, metrics: Pick<DaemonMetrics, 'served'>): S {
  const overrides: Partial<CredentialSource> = {
    async credentials(workspace) {
      const creds = await source.credentials(workspace);
      if (creds) metrics.served(workspace);
      return creds;
    },
  };
  return overriding(source, overrides as Partial<S>);
}

/** The same hubs, counting S3 credential renewals and their failures per workspace. */
export function countRenewals(hubFor: HubFor, metrics: Pick<DaemonMetrics, 'renewed' | 'failed'>): HubFor {
  const wrapped = new WeakMap<Hub, Hub>();
  return (hubUrl) => {
    const hub = hubFor(hubUrl);
    let counting = wrapped.get(hub);
    if (!counting) {
      counting = overriding(hub, {
        async s3Credentials(workspace, apiKey, now) {
          try {
            const creds = await hub.s3Credentials(workspace, apiKey, now);
            metrics.renewed(workspace);
            return creds;
          } catch (err) {
            metrics.failed(workspace, describeFailure(err).code);
            throw err;
          }
        },
      });
      wrapped.set(hub, counting);
    }
    return counting;
  };
}

/**
 * What a configuration reload (SIGHUP) changes, decided without touching anything: the
 * configuration that will be in force, what must be rebuilt, and what needs a restart instead.
 */
import type { Config } from '../config/load.js';

export interface ReloadPlan {
  /** The configuration in force afterwards: `next`, except what cannot change live. */
  readonly config: Config;
  readonly sweepScheduleChanged: boolean;
  readonly hubChanged: boolean;
  readonly stsChanged: boolean;
  /** One sentence per change that was not applied and needs a restart. */
  readonly restart: readonly string[];
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function reloadPlan(prev: Config, next: Config): ReloadPlan {
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
  // What cannot change live stays as it was, so the configuration in force always says what is.
  const config: Config = {
    ...next,
    server: prev.server,
    storage: prev.storage,
    paths: prev.paths,
    log: { ...next.log, format: prev.log.format },
  };
  return {
    config,
    sweepScheduleChanged: next.renewal.sweep_schedule !== prev.renewal.sweep_schedule,
    hubChanged: !same(next.hub, prev.hub),
    stsChanged: !same(next.sts, prev.sts),
    restart,
  };
}

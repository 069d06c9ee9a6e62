/**
 * Default locations, derived from the XDG base directories so that a test (or a user) isolates a
 * whole installation by setting HOME or XDG_*. Under systemd, the directories the unit declares
 * (ConfigurationDirectory=, StateDirectory=) win: systemd passes them as environment variables.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export const APP = 'eodh-credd';

type Env = Readonly<Record<string, string | undefined>>;

function home(env: Env): string {
  return env.HOME || homedir();
}

function firstDir(value: string | undefined): string | undefined {
  // systemd joins several directories with ':'; the first is ours.
  const first = value?.split(':')[0];
  return first ? first : undefined;
}

export function defaultConfigFile(env: Env): string {
  const systemdDir = firstDir(env.CONFIGURATION_DIRECTORY);
  if (systemdDir) return join(systemdDir, 'config.toml');
  return join(env.XDG_CONFIG_HOME || join(home(env), '.config'), APP, 'config.toml');
}

export function defaultDataDir(env: Env): string {
  const systemdDir = firstDir(env.STATE_DIRECTORY);
  if (systemdDir) return systemdDir;
  return join(env.XDG_DATA_HOME || join(home(env), '.local', 'share'), APP);
}

/** Every file the daemon keeps, all below one owner-only directory. */
export interface DataPaths {
  readonly dataDir: string;
  readonly database: string;
  readonly masterKey: string;
  readonly tokensDir: string;
  readonly adminToken: string;
  /** Opens /metrics only: Prometheus sends it over TCP, where the admin token never goes (#12). */
  readonly metricsToken: string;
  readonly lock: string;
  /** The Unix socket the CLI talks to the daemon through (#12): 0600, in the 0700 data directory. */
  readonly socket: string;
}

export function dataPaths(dataDir: string): DataPaths {
  return {
    dataDir,
    database: join(dataDir, 'credd.db'),
    masterKey: join(dataDir, 'master-key'),
    tokensDir: join(dataDir, 'tokens'),
    adminToken: join(dataDir, 'admin-token'),
    metricsToken: join(dataDir, 'metrics-token'),
    lock: join(dataDir, 'serve.lock'),
    socket: join(dataDir, 'daemon.sock'),
  };
}

/** The file a workspace's client token lives in (what AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names). */
export function clientTokenFile(paths: DataPaths, workspace: string): string {
  return join(paths.tokensDir, `${workspace}.token`);
}

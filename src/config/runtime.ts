/**
 * Where a running daemon says it listens (<data dir>/daemon.json, 0600). Kept apart from daemon.ts
 * so CLI commands that only need to reach the daemon do not load the server to find it.
 */
import { join } from 'node:path';
import type { Config } from './load.js';

export interface RuntimeInfo {
  readonly pid: number;
  readonly url: string;
  readonly port: number;
}

export const runtimeFile = (config: Config): string => join(config.paths.dataDir, 'daemon.json');

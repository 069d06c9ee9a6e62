/** Talking to the running daemon from the CLI: find it, call it, explain when it is not there. */
import { existsSync, readFileSync } from 'node:fs';
import type { Config } from '../config/load.js';
import { type RuntimeInfo, runtimeFile } from '../config/runtime.js';
import { EXIT, UserError } from '../core/errors.js';
import { readSecretFile } from '../store/client-tokens.js';

/** The daemon's base URL: the configured port, or what a running daemon wrote (port 0 = ephemeral). */
export function daemonBaseUrl(config: Config): string {
  const info = runtimeInfo(config);
  if (config.server.port === 0 || info) {
    if (!info)
      throw new UserError(
        'The daemon is not running (no port yet): start it with "eodh-credd serve".',
        EXIT.UNAVAILABLE,
      );
    return info.url;
  }
  const host = config.server.host;
  const shown = host === '::1' ? '[::1]' : host === 'localhost' || host === '0.0.0.0' ? '127.0.0.1' : host;
  return `http://${shown}:${config.server.port}`;
}

export function runtimeInfo(config: Config): RuntimeInfo | null {
  const file = runtimeFile(config);
  if (!existsSync(file)) return null;
  try {
    const info = JSON.parse(readFileSync(file, 'utf8')) as RuntimeInfo;
    process.kill(info.pid, 0); // still alive?
    return info;
  } catch {
    return null;
  }
}

export async function callDaemon(
  config: Config,
  path: string,
  init: { method?: string; token: string; timeoutMs?: number },
): Promise<{ status: number; body: unknown }> {
  const url = `${daemonBaseUrl(config)}${path}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method: init.method ?? 'GET',
      headers: { authorization: init.token, accept: 'application/json' },
      signal: AbortSignal.timeout(init.timeoutMs ?? 15_000),
    });
  } catch {
    throw new UserError(
      `The daemon does not answer at ${daemonBaseUrl(config)}: is "eodh-credd serve" running?`,
      EXIT.UNAVAILABLE,
    );
  }
  const text = await response.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: response.status, body };
}

export function adminToken(config: Config): string {
  return readSecretFile(config.paths.adminToken, 'admin token');
}

/** The message of an error body the daemon sent, for the user. */
export function errorMessage(body: unknown): string {
  if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  return 'unexpected answer';
}

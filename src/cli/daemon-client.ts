/**
 * Talking to the running daemon from the CLI: find it, call it, explain when it is not there.
 * The transport is node:http, not the global fetch: loading undici costs ~110 ms, more than the
 * whole of `eodh-credd token` is allowed to take (#15). Everything transport-specific is in
 * request() below.
 */
import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
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
  const base = daemonBaseUrl(config);
  let response: { status: number; text: string };
  try {
    response = await request(new URL(`${base}${path}`), {
      method: init.method ?? 'GET',
      headers: { authorization: init.token, accept: 'application/json' },
      timeoutMs: init.timeoutMs ?? 15_000,
    });
  } catch {
    throw new UserError(`The daemon does not answer at ${base}: is "eodh-credd serve" running?`, EXIT.UNAVAILABLE);
  }
  let body: unknown = null;
  try {
    body = JSON.parse(response.text);
  } catch {
    body = null;
  }
  return { status: response.status, body };
}

/** One HTTP request and its whole answer; rejects on a network error or when timeoutMs passes. */
export function request(
  url: URL,
  options: { method: string; headers: Record<string, string>; timeoutMs: number },
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method, headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        clearTimeout(deadline);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', reject);
    });
    // A deadline for the whole exchange, not just an idle socket.
    const deadline = setTimeout(
      () => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    req.on('error', (err) => {
      clearTimeout(deadline);
      reject(err);
    });
    req.end();
  });
}

export function adminToken(config: Config): string {
  return readSecretFile(config.paths.adminToken, 'admin token');
}

/** The message of an error body the daemon sent, for the user. */
export function errorMessage(body: unknown): string {
  if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  return 'unexpected answer';
}

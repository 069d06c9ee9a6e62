/**
 * Talking to the running daemon from the CLI: over the Unix socket in the data directory, never
 * over TCP, so the CLI's tokens never reach whoever holds the TCP port while the daemon is down
 * (#12). When no daemon listens there, the CLI says so (exit 69) and sends nothing anywhere.
 *
 * Who is on the other end: Node cannot ask the kernel for the peer's uid (no SO_PEERCRED), so
 * the check is on ownership instead. The data directory must be a directory owned by us that
 * nobody else can enter (0700), and the socket in it a socket owned by us: nobody but us (and
 * root) can create or replace an entry in such a directory, so the process listening there was
 * started by our uid. The directory is checked without following a symlink, and connecting goes
 * through the same path, so nothing can be swapped in between that we would not have seen.
 */
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import type { Config } from '../config/load.js';
import { type RuntimeInfo, runtimeFile } from '../config/runtime.js';
import { socketAddress } from '../config/socket-path.js';
import { EXIT, UserError } from '../core/errors.js';
import { readSecretFile } from '../store/client-tokens.js';

const NOT_RUNNING = 'start it with "systemctl --user start eodh-credd" or "eodh-credd serve"';

/** The daemon's TCP base URL, for AWS clients: the configured port, or what a running daemon wrote (port 0 = ephemeral). */
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

/**
 * Refuse a socket that someone other than us could have put there; say "not running" when there
 * is none. Exported for the tests.
 */
export function assertTrustedSocket(config: Config): void {
  const { dataDir, socket } = config.paths;
  const me = process.getuid?.();
  let dir: ReturnType<typeof lstatSync>;
  try {
    dir = lstatSync(dataDir);
  } catch {
    throw new UserError(`The daemon is not running (no ${dataDir}): ${NOT_RUNNING}.`, EXIT.UNAVAILABLE);
  }
  if (!dir.isDirectory() || (me !== undefined && dir.uid !== me) || (dir.mode & 0o077) !== 0) {
    throw new UserError(
      `${dataDir} is not a directory of your own that only you can enter (mode 0700), so its socket cannot be trusted; refusing to talk to it.`,
      EXIT.NOPERM,
    );
  }
  let sock: ReturnType<typeof lstatSync>;
  try {
    sock = lstatSync(socket);
  } catch {
    throw new UserError(`The daemon is not running (no socket at ${socket}): ${NOT_RUNNING}.`, EXIT.UNAVAILABLE);
  }
  if (!sock.isSocket() || (me !== undefined && sock.uid !== me)) {
    throw new UserError(
      `${socket} is not a socket of your own (owner uid ${sock.uid}); refusing to talk to it.`,
      EXIT.NOPERM,
    );
  }
}

export interface DaemonAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** One request to the daemon over its Unix socket. A daemon that is not there is a UserError (exit 69). */
export function callDaemon(
  config: Config,
  path: string,
  init: { method?: string; token?: string; timeoutMs?: number },
): Promise<DaemonAnswer> {
  assertTrustedSocket(config);
  const socket = config.paths.socket;
  const address = socketAddress(socket);
  return new Promise<DaemonAnswer>((resolve, reject) => {
    const req = request(
      {
        socketPath: address.path,
        path,
        method: init.method ?? 'GET',
        headers: {
          ...(init.token === undefined ? {} : { authorization: init.token }),
          accept: 'application/json',
          connection: 'close',
        },
        agent: false,
        timeout: init.timeoutMs ?? 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          let body: unknown = null;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            body = null;
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      // A socket file with nobody listening: a daemon that was killed.
      const gone = err.code === 'ECONNREFUSED' || err.code === 'ENOENT';
      reject(
        new UserError(
          gone
            ? `The daemon is not running (nothing listens on ${socket}): ${NOT_RUNNING}.`
            : `The daemon does not answer on ${socket} (${err.code ?? err.message}): is it stuck? See its log.`,
          EXIT.UNAVAILABLE,
        ),
      );
    });
    req.end();
  }).finally(() => address.release());
}

/** Whether a daemon answers on the socket (for `status` and `doctor`); problems other than "not running" are thrown. */
export async function daemonRunning(config: Config): Promise<boolean> {
  try {
    await callDaemon(config, '/healthz', { timeoutMs: 3_000 });
    return true;
  } catch (err) {
    if (err instanceof UserError && err.exitCode === EXIT.UNAVAILABLE && /not running/.test(err.message)) return false;
    throw err;
  }
}

export function adminToken(config: Config): string {
  return readSecretFile(config.paths.adminToken, 'admin token');
}

/** The message of an error body the daemon sent, for the user. */
export function errorMessage(body: unknown): string {
  if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  return 'unexpected answer';
}

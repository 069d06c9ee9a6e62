/**
 * The daemon's second way in: the same HTTP app on a Unix socket in the owner-only data
 * directory, for the CLI (#12). Admin routes are served here only, never on TCP.
 *
 * Who can connect: Node cannot read a peer's credentials (no SO_PEERCRED), so the socket's
 * safety rests on file ownership instead. The socket is 0600 inside the 0700 data directory, so
 * only its owner (and root) can connect to it; and since nobody else can create, rename or
 * remove entries in that directory, a CLI that finds the directory and the socket owned by its
 * own uid knows the listener was created by that uid (src/cli/daemon-client.ts checks this).
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { socketAddress } from '../config/socket-path.js';
import { EXIT, UserError } from '../core/errors.js';

/** Connections accepted on the Unix socket: the guard lets the admin routes through for these only. */
const localSockets = new WeakSet<object>();

/** Whether the request came over the daemon's Unix socket (rather than TCP). */
export function isUnixSocketRequest(request: IncomingMessage): boolean {
  return localSockets.has(request.socket);
}

export interface UnixSocketServer {
  readonly path: string;
  close(): Promise<void>;
}

export interface UnixSocketOptions {
  readonly path: string;
  readonly handler: (request: IncomingMessage, response: ServerResponse) => void;
  readonly logger: Logger;
  /** Idle and request timeouts, as on TCP. */
  readonly idleTimeoutMs?: number;
}

/**
 * Listen on `path`. A socket file left by a daemon that died is removed first: the caller holds
 * the data directory's process lock, so no other daemon can be listening there.
 */
export async function serveUnixSocket(options: UnixSocketOptions): Promise<UnixSocketServer> {
  const { path, logger } = options;
  removeStaleSocket(path);
  const server = createServer({ requestTimeout: 120_000 }, options.handler);
  const idle = options.idleTimeoutMs ?? 10_000;
  server.setTimeout(idle);
  server.keepAliveTimeout = idle;
  server.on('connection', (socket: Socket) => localSockets.add(socket));
  server.on('clientError', (_err, socket) => socket.destroy());
  // Held until the server is closed: Node unlinks the address it listened on when it closes.
  const address = socketAddress(path);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: address.path, readableAll: false, writableAll: false }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    address.release();
    throw err;
  }
  // The directory is 0700 already; 0600 on the socket says the same on the file itself.
  chmodSync(path, 0o600);
  logger.debug({ path }, 'listening on the Unix socket');
  let closing: Promise<void> | undefined;
  return {
    path,
    close() {
      closing ??= new Promise<void>((resolve) => {
        // Answers in flight finish; their keep-alive connections are closed as they go idle.
        const idleSweep = setInterval(() => server.closeIdleConnections(), 20);
        server.close(() => {
          clearInterval(idleSweep);
          address.release();
          resolve();
        });
        server.closeIdleConnections();
      }).then(() => removeStaleSocket(path));
      return closing;
    },
  };
}

function removeStaleSocket(path: string): void {
  try {
    if (!lstatSync(path).isSocket()) {
      throw new UserError(
        `${path}: exists and is not a socket; remove it, then start eodh-credd again.`,
        EXIT.CANTCREAT,
      );
    }
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

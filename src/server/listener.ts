/**
 * The daemon's HTTP listener: a node:http server with tight connection limits, the fast path in
 * front, and the fastify app (guard, refusals, rate limit, admin and metrics routes) behind it for
 * every request the fast path leaves.
 *
 * The fastify app is built when the first such request arrives, not at start-up: loading and
 * compiling it costs ~200 ms and ~20 MiB, and a daemon whose clients only ever fetch their
 * credentials never needs it. Requests that arrive while it is being built wait for it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { errorBody, errorTable } from '../core/errors.js';
import type { RequestTaker } from './fast-path.js';

export interface ConnectionLimits {
  /** Request line and headers together; a credential request needs well under 1 KiB. */
  readonly maxHeaderBytes: number;
  /** A client must have sent its whole header block this soon after connecting (slow clients). */
  readonly headersTimeoutMs: number;
  /** ... and the whole request this soon. */
  readonly requestTimeoutMs: number;
  /** An idle or stalled socket is closed after this long. */
  readonly idleTimeoutMs: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  maxHeaderBytes: 8 * 1024,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  idleTimeoutMs: 10_000,
};

/** How a request the fast path left is handled: fastify's `routing`, once the app is ready. */
export type RequestHandler = (request: IncomingMessage, response: ServerResponse) => void;

export interface ListenerOptions {
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  readonly fastPath: RequestTaker;
  /** Builds the app behind the fast path; called once, on the first request the fast path leaves. */
  readonly buildControl: () => Promise<{ readonly handler: RequestHandler; close(): Promise<void> }>;
  readonly limits?: Partial<ConnectionLimits> | undefined;
}

export interface Listener {
  readonly server: Server;
  readonly port: number;
  /** The request handler, for a second way in (the Unix socket, unix-socket.ts). */
  readonly handle: RequestHandler;
  /** Whether the app behind the fast path has been built (tests and the benchmark read it). */
  controlLoaded(): boolean;
  /** Stop accepting, let requests in flight finish (their connections close after), close the app. */
  close(): Promise<void>;
}

/**
 * Errors the HTTP parser raises before any handler sees a request (malformed request line, header
 * overflow, slow headers) get the same JSON body as every other error, and are logged by code
 * only: Node attaches the raw bytes of the request, Authorization header included.
 */
export function clientErrorHandler(log: Logger) {
  return (err: NodeJS.ErrnoException, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'The request headers are too large.']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'The request took too long to arrive.']
          : [400, 'Bad Request', errorTable.bad_request.message];
    log.debug({ code: err.code }, 'malformed request refused');
    const body = JSON.stringify(errorBody('bad_request', message));
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n` +
        `X-Content-Type-Options: nosniff\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    // Not end(): a client that keeps sending would hold a half-closed socket open.
    socket.destroy();
  };
}

export async function listen(options: ListenerOptions): Promise<Listener> {
  const log = options.logger;
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  let control: Promise<{ readonly handler: RequestHandler; close(): Promise<void> }> | undefined;
  let loaded = false;
  let stopping = false;

  const loadControl = () => {
    control ??= options.buildControl().then(
      (built) => {
        loaded = true;
        return built;
      },
      (err: unknown) => {
        control = undefined; // the next request tries again
        throw err;
      },
    );
    return control;
  };

  const onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    // During a graceful stop every answer closes its connection: close() waits for requests in
    // flight and must not then wait for the client's keep-alive to time out.
    if (stopping) response.setHeader('connection', 'close');
    let taken: boolean;
    try {
      taken = options.fastPath(request, response);
    } catch (err) {
      // A throw here would otherwise end the process: answer this request, keep serving the rest.
      internalError(response, err, 'request failed');
      return;
    }
    if (taken) return;
    loadControl().then(
      ({ handler }) => handler(request, response),
      (err: unknown) => internalError(response, err, 'the HTTP app could not be built'),
    );
  };

  /** Internals stay in the log (without the request's headers); the client learns nothing. */
  const internalError = (response: ServerResponse, err: unknown, what: string): void => {
    log.error({ err }, what);
    if (response.headersSent) return void response.destroy();
    response.writeHead(500, {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    response.end(JSON.stringify(errorBody('internal')));
  };

  const server = createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // How often Node looks for connections past those timeouts (its default is 30 s).
      connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
    },
    onRequest,
  );
  // Requests are answered from memory; a client that is this slow is not a client.
  server.setTimeout(limits.idleTimeoutMs);
  server.keepAliveTimeout = limits.idleTimeoutMs;
  server.on('clientError', clientErrorHandler(log));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;

  return {
    server,
    port,
    handle: onRequest,
    controlLoaded: () => loaded,
    async close() {
      if (stopping) return;
      stopping = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // A keep-alive connection whose answer was in flight goes idle once it is sent: close those
      // as they come, or close() would wait for the clients' keep-alive to end.
      const idleSweep = setInterval(() => server.closeIdleConnections(), 20);
      server.closeIdleConnections();
      await closed;
      clearInterval(idleSweep);
      if (control)
        await control.then(
          (built) => built.close(),
          () => undefined,
        );
    },
  };
}

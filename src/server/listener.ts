/**
 * The daemon's sockets: one node:http server with tight connection limits (handed to fastify as
 * its server), listening on one or more endpoints. The first endpoint is the http server's own;
 * each further one (the IPv6 loopback twin, a second socket systemd passed) is a plain TCP
 * listener that hands its connections to the same http server, so every connection gets the same
 * limits, the same routes and the same graceful stop.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { errorBody, errorTable } from '../core/errors.js';

export interface ConnectionLimits {
  /** Request line and headers together; a credential request needs well under 1 KiB. */
  readonly maxHeaderBytes: number;
  /** A client must have sent its whole header block this soon after connecting (slow clients). */
  readonly headersTimeoutMs: number;
  /** ... and the whole request this soon. */
  readonly requestTimeoutMs: number;
  /** A kept-alive connection with no request is closed after this long. */
  readonly idleTimeoutMs: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  maxHeaderBytes: 8 * 1024,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  idleTimeoutMs: 10_000,
};

/**
 * The headers every answer of the daemon carries: set on fastify's reply by the guard and by
 * sendError (guard.ts), on the answers Node or fastify write themselves (malformed requests, the
 * 503s of a stop) here.
 */
export const COMMON_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};
export const COMMON_HEADER_ENTRIES: ReadonlyArray<readonly [string, string]> = Object.entries(COMMON_HEADERS);

/** Where to listen: an address and port, or a listening socket inherited from systemd. */
export type Endpoint = { readonly host: string; readonly port: number } | { readonly fd: number };

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
    const common = COMMON_HEADER_ENTRIES.map(([name, value]) => `${name}: ${value}\r\n`).join('');
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\n${common}` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    // Not end(): a client that keeps sending would hold a half-closed socket open.
    socket.destroy();
  };
}

export type RequestHandler = (request: IncomingMessage, response: ServerResponse) => void;

/** The http server's state that the graceful stop changes. */
export interface HttpServerControl {
  stopping: boolean;
}

/** A node:http server with our limits, for fastify's serverFactory. */
export function createHttpServer(
  handler: RequestHandler,
  log: Logger,
  limits: ConnectionLimits,
  control: HttpServerControl,
): Server {
  const server = createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      // The deadlines are kept per connection below. Node's own headersTimeout/requestTimeout
      // checks run on a timer that wakes the process every connectionsCheckingInterval whether or
      // not anyone is connected; an idle daemon should not wake at all (#13).
      headersTimeout: 0,
      requestTimeout: 0,
      connectionsCheckingInterval: NEVER_MS,
    },
    (request, response) => {
      // During a graceful stop every answer closes its connection: close() waits for requests in
      // flight and must not then wait for the client's keep-alive to time out. Fastify answers
      // those with a 503 of its own, written straight to the response: it gets the common
      // headers here.
      if (control.stopping) {
        for (const [name, value] of COMMON_HEADER_ENTRIES) response.setHeader(name, value);
        response.setHeader('connection', 'close');
      }
      (request.socket as Watched)[WATCH]?.requested(request, response);
      handler(request, response);
    },
  );
  // An idle kept-alive connection is closed after this long (and clients are told so in a
  // Keep-Alive header). No socket timeout besides: Node's would also cut off an answer that takes
  // long (an admin rotation waiting on the hub); the deadlines below watch slow clients instead.
  server.keepAliveTimeout = limits.idleTimeoutMs;
  server.on('clientError', clientErrorHandler(log));
  enforceDeadlines(server, limits);
  return server;
}

/** Longer than any daemon runs between restarts; the largest delay a Node timer takes. */
const NEVER_MS = 2 ** 31 - 1;

/**
 * A client must send its header block within headersTimeoutMs of connecting, and any body within
 * requestTimeoutMs of connecting; a slow-drip client is cut off then. Once the request is in, the
 * answer takes what it takes (an admin rotation waits on the hub). A kept-alive connection gets
 * the idle time and then the header time again for its next request; a client that stops reading
 * its answers is idle too. The timers exist only while a connection is open.
 *
 * The timer is checked lazily: a request only notes itself on the connection (no timer is touched
 * per request, which the hot path would pay for), and when the timer fires it looks at what
 * happened since. So a deadline that starts between two checks is enforced up to one period late:
 * a slow client is cut off within twice its allowance. The first request's headers are held to
 * headersTimeoutMs exactly.
 */
function enforceDeadlines(server: Server, limits: ConnectionLimits): void {
  server.on('connection', (socket: Socket) => {
    const watch = new ConnectionWatch(socket, limits);
    (socket as Watched)[WATCH] = watch;
    socket.once('close', () => watch.stop());
  });
}

const WATCH = Symbol('eodh-credd.deadline');

interface Watched {
  [WATCH]?: ConnectionWatch;
}

class ConnectionWatch {
  private timer: NodeJS.Timeout;
  private requests = 0;
  private requestsAtCheck = 0;
  private request: IncomingMessage | null = null;
  private response: ServerResponse | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly limits: ConnectionLimits,
  ) {
    this.timer = this.after(limits.headersTimeoutMs);
  }

  /** The hot path: a request's headers are in. */
  requested(request: IncomingMessage, response: ServerResponse): void {
    this.requests++;
    this.request = request;
    this.response = response;
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private check(): void {
    const { request, response, limits } = this;
    // Still working on the answer (an admin rotation waits on the hub). An answer that is written
    // but not yet read by the client does not count: that client is as idle as one that sends
    // nothing, and is cut off like one (pipelined requests it never reads cannot hold the
    // connection open).
    const answering = response !== null && !response.writableEnded;
    const bodyArriving = answering && request !== null && !request.complete;
    if (this.requests !== this.requestsAtCheck) {
      // A request came since the last check: its body gets the rest of the request time; after
      // the answer the connection gets the idle time plus the header time for the next request.
      this.requestsAtCheck = this.requests;
      this.rearm(bodyArriving ? Math.max(1, limits.requestTimeoutMs - limits.headersTimeoutMs) : this.idleMs());
    } else if (answering && !bodyArriving) {
      this.rearm(this.idleMs()); // the answer is still being worked on: look again later
    } else {
      this.socket.destroy(); // no headers, a body that stopped arriving, or an idle client
    }
  }

  private idleMs(): number {
    return this.limits.idleTimeoutMs + this.limits.headersTimeoutMs;
  }

  private rearm(ms: number): void {
    this.timer = this.after(ms);
  }

  private after(ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.check(), ms);
    timer.unref();
    return timer;
  }
}

function listenOn(server: TcpServer, endpoint: Endpoint): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if ('fd' in endpoint) server.listen({ fd: endpoint.fd }, done);
    else server.listen({ host: endpoint.host, port: endpoint.port, exclusive: true }, done);
  });
}

export interface BoundAddress {
  readonly address: string;
  readonly port: number;
}

export interface Sockets {
  readonly addresses: readonly BoundAddress[];
  /** Stop accepting, let requests in flight finish (their connections close after). */
  close(): Promise<void>;
}

function addressOf(server: TcpServer): BoundAddress {
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('listening socket has no TCP address');
  return { address: address.address, port: address.port };
}

/**
 * Listens on every endpoint (in order; an endpoint with port 0 after the first takes the first
 * one's port). Fails, closing what it opened, if any endpoint cannot be had.
 */
export async function listenAll(
  server: Server,
  endpoints: readonly Endpoint[],
  control: HttpServerControl,
): Promise<Sockets> {
  const [first, ...rest] = endpoints;
  if (!first) throw new Error('nothing to listen on');
  const forwarders: TcpServer[] = [];
  const closeAll = async () => {
    await Promise.all(
      [server as TcpServer, ...forwarders].map(
        (s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve())),
      ),
    );
  };
  await listenOn(server, first);
  const firstPort = addressOf(server).port;
  try {
    for (const endpoint of rest) {
      const forwarder = createTcpServer({ noDelay: true }, (socket) => server.emit('connection', socket));
      const target = 'fd' in endpoint || endpoint.port !== 0 ? endpoint : { ...endpoint, port: firstPort };
      await listenOn(forwarder, target);
      forwarders.push(forwarder);
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  return {
    addresses: [addressOf(server), ...forwarders.map(addressOf)],
    async close() {
      if (control.stopping) return;
      control.stopping = true;
      const closed = closeAll();
      // A keep-alive connection whose answer was in flight goes idle once it is sent: close those
      // as they come, or close() would wait for the clients' keep-alive to end.
      const idleSweep = setInterval(() => server.closeIdleConnections(), 20);
      server.closeIdleConnections();
      await closed;
      clearInterval(idleSweep);
    },
  };
}

/**
 * The guard: the first onRequest hook of every route (and the pre-handler of the not-found
 * answer), with the credential the route's config asks for fixed when the route is added. Loopback
 * is reachable by every local user, every container with host networking and every web page the
 * user opens, so, in this order:
 * - the request as a whole must pass requestProblem() (plain path, single Host/Authorization/…,
 *   Host naming the address we serve, nothing a browser sends, no body);
 * - a workspace in the path must match the strict name pattern before anything looks it up;
 * - the process on the other end of the connection must belong to an allowed user (#12): the
 *   daemon's own uid, or for a workspace route a uid the credential source allows for it;
 * - the route's token (a workspace's client token, or the admin token) is checked, digests
 *   compared in constant time.
 * A request that passes costs no more than those checks, and a kept-alive connection pays for
 * its peer lookup and its token's digest once: only refusals reach the rate limiter (counted per
 * user on loopback, else per address) and the refusal log.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import rateLimit from '@fastify/rate-limit';
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  preHandlerHookHandler,
} from 'fastify';
import type { Logger } from 'pino';
import { type ErrorCode, errorBody, errorTable } from '../core/errors.js';
import type { AuthResult, CredentialSource } from '../core/source.js';
import { isWorkspaceName } from '../core/workspace-name.js';
import { tokenDigest } from '../store/client-tokens.js';
import { type HostPolicy, isLoopbackHost } from './hosts.js';
import { COMMON_HEADER_ENTRIES } from './listener.js';
import { type ConnectionEnds, PeerUids, type TableReader } from './peer.js';
import { RefusalLog } from './refusals.js';
import { presentedToken, requestProblem } from './request-checks.js';
import { isUnixSocketConnection, isUnixSocketRequest } from './unix-socket.js';

/**
 * Which credential a route wants: a workspace's client token, the admin token (and the Unix
 * socket), the metrics token (or, on the Unix socket, the admin token), or none.
 */
export type RouteAuth = 'workspace' | 'admin' | 'metrics' | 'none';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
  interface FastifyRequest {
    /** The client token that authenticated the request (workspace routes), or null. */
    clientTokenId: string | null;
    /** The uid of the process that sent an admitted request over TCP (for the audit trail), or null. */
    peerUid: number | null;
  }
}

export interface PeerOptions {
  /** The uid served on every route (the daemon's own). */
  readonly ownUid: number;
  /** The uid of the process on the other end (default: from /proc/net); inject() tests replace it. */
  readonly uidOf?: ((socket: ConnectionEnds & object) => number | null) | undefined;
  /** Reads /proc/net/tcp{,6} (default: the real tables, reads shared between connections). */
  readonly readTable?: TableReader | undefined;
}

export interface GuardOptions {
  readonly source: CredentialSource;
  readonly hosts: HostPolicy;
  readonly logger: Logger;
  /** SHA-256 of the admin token; admin routes are closed when absent. */
  readonly adminTokenHash?: Buffer | undefined;
  /** SHA-256 of the metrics token, which opens /metrics only (on TCP too: Prometheus cannot use a Unix socket). */
  readonly metricsTokenHash?: Buffer | undefined;
  /** Whether a request came the owner-only way (the Unix socket); admin routes answer nothing else (#12). */
  readonly isLocal?: ((request: IncomingMessage) => boolean) | undefined;
  readonly failedAuth: { readonly max: number; readonly timeWindowMs: number };
  readonly peers: PeerOptions;
}

/**
 * The headers every answer carries. Set on fastify's reply (by the guard, which every routed
 * request passes, and by sendError, for errors raised before it), not with setHeader on the raw
 * response: a header set there sends Node's writeHead down its slow path for every other header
 * of the answer (README, Benchmarks).
 */
export function withCommonHeaders(reply: FastifyReply): FastifyReply {
  for (const [name, value] of COMMON_HEADER_ENTRIES) reply.header(name, value);
  return reply;
}

/** Every error goes out this way. */
export function sendError(reply: FastifyReply, code: ErrorCode, message?: string): FastifyReply {
  return withCommonHeaders(reply).code(errorTable[code].status).type('application/json').send(errorBody(code, message));
}

/** The admin and metrics token check: fixed-length digests compared in constant time. */
export function checkDigest(digest: Buffer, expected: Buffer | undefined): AuthResult {
  if (!expected) return { ok: false, code: 'forbidden' };
  return digest.length === expected.length && timingSafeEqual(digest, expected)
    ? { ok: true, clientTokenId: 'admin' }
    : { ok: false, code: 'unauthorized' };
}

/**
 * The SHA-256 of the token a connection presents, hashed once per connection and token: a
 * keep-alive client sends the same token with every request. Comparing the presented string
 * with the one this connection sent before is not constant-time, and need not be: both came from
 * the same client, so the timing tells it nothing it did not send itself. The digests are then
 * compared with the stored ones in constant time, as always.
 */
export class ConnectionDigests {
  private readonly last = new WeakMap<object, { readonly token: string; readonly digest: Buffer }>();

  of(connection: object, token: string): Buffer {
    const last = this.last.get(connection);
    if (last !== undefined && last.token === token) return last.digest;
    const digest = tokenDigest(token);
    this.last.set(connection, { token, digest });
    return digest;
  }
}

function isLoopbackAddress(address: string): boolean {
  const bare = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  return isLoopbackHost(bare);
}

/**
 * The source a refusal is counted against. On loopback every local user can use any of the 2^24
 * addresses of 127.0.0.0/8 (#12 item 8), so there the user is the source; an address only for
 * clients on other machines (server.allow_non_loopback).
 */
function sourceOf(remote: string, uid: number | null): string {
  if (uid !== null) return `uid:${uid}`;
  return isLoopbackAddress(remote) ? 'loopback' : remote;
}

export async function registerGuard(app: FastifyInstance, options: GuardOptions): Promise<void> {
  const { source, hosts, peers } = options;
  const uids = new PeerUids(peers.readTable);
  const knownUid = peers.uidOf ?? ((socket: ConnectionEnds & object) => uids.known(socket));
  // The lookup starts when the connection is accepted, while the client is still sending.
  // Unix-socket connections have no row there: only the daemon's uid can reach that socket.
  if (!peers.uidOf)
    app.server.on('connection', (socket) => {
      if (!isUnixSocketConnection(socket)) void uids.lookup(socket);
    });
  const isLocal = options.isLocal ?? isUnixSocketRequest;
  const refusals = new RefusalLog(options.logger, options.failedAuth.timeWindowMs);
  const audit = options.logger.child({ audit: true });
  app.addHook('onClose', async () => refusals.flush());
  app.decorateRequest('clientTokenId', null);
  app.decorateRequest('peerUid', null);

  await app.register(rateLimit, { global: false });
  const countFailure = app.createRateLimit({
    max: options.failedAuth.max,
    timeWindow: options.failedAuth.timeWindowMs,
    keyGenerator: (request) =>
      sourceOf(request.ip ?? '', isLocal(request.raw) ? peers.ownUid : (knownUid(request.raw.socket) ?? null)),
  });

  // Refusals of other users go to the audit trail: someone tried to read what is not theirs.
  const peerRefusals = new RefusalLog(audit, options.failedAuth.timeWindowMs);
  app.addHook('onClose', async () => peerRefusals.flush());

  /** A refused request: counted for the rate limit, logged (summarised), answered. */
  const refuse = (request: FastifyRequest, reply: FastifyReply, code: ErrorCode, uid: number | null) => {
    const src = sourceOf(request.ip ?? '', uid);
    const workspace = (request.params as { workspace?: string } | undefined)?.workspace ?? null;
    const fields = { remote: request.ip, uid, workspace, route: request.routeOptions.url ?? null, code };
    const log = code === 'forbidden_peer' ? peerRefusals : refusals;
    countFailure(request).then(
      (limit) => {
        if (!limit.isAllowed && limit.isExceeded) {
          log.record({ source: src, level: 'warn', message: 'too many refused requests: source throttled', fields });
          reply.header('retry-after', String(limit.ttlInSeconds));
          sendError(reply, 'too_many_requests', `Too many failed attempts; retry in ${limit.ttlInSeconds} s.`);
          return;
        }
        if (code === 'forbidden_peer')
          log.record({ source: src, level: 'warn', message: 'request refused: user not allowed here', fields });
        else log.record({ source: src, level: 'info', message: 'request refused: token not valid here', fields });
        sendError(reply, code);
      },
      (err: unknown) => reply.send(err),
    );
  };

  /** The token check of a route that wants one. */
  const authenticate = (needs: RouteAuth, digest: Buffer, workspace: string, local: boolean): AuthResult => {
    if (needs === 'admin') return checkDigest(digest, options.adminTokenHash);
    if (needs === 'metrics') {
      const auth = checkDigest(digest, options.metricsTokenHash);
      return !auth.ok && local ? checkDigest(digest, options.adminTokenHash) : auth;
    }
    return source.authenticate(workspace, digest);
  };

  const admit = (
    needs: RouteAuth,
    request: FastifyRequest,
    reply: FastifyReply,
    done: () => void,
    local: boolean,
    uid: number | null,
  ): void => {
    const workspace = (request.params as { workspace?: string } | undefined)?.workspace;
    // The admin routes do not exist on TCP: the admin token never needs to travel there, and
    // whoever holds the port while the daemon is down learns nothing from the CLI (#12).
    if (needs === 'admin' && !local) {
      sendError(reply, 'not_found');
      return;
    }
    if (uid !== peers.ownUid) {
      // Clients on other machines have no row in our socket tables; they are reachable only when
      // server.allow_non_loopback says so, and then the token is all they have.
      const remoteMachine = uid === null && !isLoopbackAddress(request.raw.socket.remoteAddress ?? '');
      const allowed =
        remoteMachine ||
        (uid !== null && needs === 'workspace' && source.allowedUids?.(workspace as string)?.has(uid) === true);
      if (!allowed) {
        refuse(request, reply, 'forbidden_peer', uid);
        return;
      }
    }
    if (needs === 'none') {
      done();
      return;
    }
    const token = presentedToken(request.headers.authorization);
    const auth: AuthResult =
      token === null
        ? { ok: false, code: 'unauthorized' }
        : authenticate(needs, digests.of(request.raw.socket, token), workspace as string, local);
    if (!auth.ok) {
      refuse(request, reply, auth.code, uid);
      return;
    }
    request.clientTokenId = auth.clientTokenId;
    if (!local) request.peerUid = uid;
    done();
  };
  const digests = new ConnectionDigests();

  /** The guard of a route that wants `needs`: decided once, when the route is added. */
  const guardFor =
    (needs: RouteAuth): onRequestHookHandler =>
    (request, reply, done) => {
      withCommonHeaders(reply);
      const problem = requestProblem(request.raw, hosts);
      if (problem) return void sendError(reply, problem.code, problem.message);
      const workspace = (request.params as { workspace?: unknown } | undefined)?.workspace;
      if (workspace !== undefined && (typeof workspace !== 'string' || !isWorkspaceName(workspace)))
        return void sendError(reply, 'not_found');
      // The socket is 0600 in the owner-only data directory: whoever is on it is the daemon's user.
      if (isLocal(request.raw)) return admit(needs, request, reply, done, true, peers.ownUid);
      const socket = request.raw.socket;
      const uid = knownUid(socket);
      if (uid !== undefined) return admit(needs, request, reply, done, false, uid);
      // The connection's first request, and the lookup still running.
      Promise.resolve(uids.lookup(socket)).then((found) => admit(needs, request, reply, done, false, found));
    };

  // Every route gets the guard first, with the credential its config asks for (none by default).
  app.addHook('onRoute', (route) => {
    const own =
      route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [guardFor(route.config?.auth ?? 'none'), ...own];
  });
  // An unknown path passes the same checks (and the peer check) before it learns there is nothing.
  app.setNotFoundHandler({ preHandler: guardFor('none') as unknown as preHandlerHookHandler }, (_request, reply) => {
    sendError(reply, 'not_found');
  });
}

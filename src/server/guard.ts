/**
 * The guard in front of every fastify route. Loopback is reachable by every local user, every
 * container with host networking and every web page the user opens, so, in this order:
 * - the request as a whole must pass requestProblem() (plain path, single Host/Authorization/…,
 *   Host naming the address we serve, nothing a browser sends, no body);
 * - a workspace in the path must match the strict name pattern before anything looks it up;
 * - the client token is checked by the CredentialSource (digests compared in constant time);
 * - failed authentications are rate limited per source address; valid clients never are.
 * Authentication is decided in onRequest and enforced in preValidation, so the rate limiter (a
 * route-level onRequest hook, which runs in between) can count exactly the failures.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { type ErrorCode, errorBody, errorTable } from '../core/errors.js';
import type { AuthResult, CredentialSource } from '../core/source.js';
import { isWorkspaceName } from '../core/workspace-name.js';
import { tokenDigest } from '../store/client-tokens.js';
import type { HostPolicy } from './hosts.js';
import { presentedToken, requestProblem } from './request-checks.js';
import { isUnixSocketRequest } from './unix-socket.js';

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
    credd: { auth: AuthResult | null } | null;
  }
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
}

/** Every error goes out this way (some paths, like bad URLs, bypass the onSend hook: set the headers here too). */
export function sendError(reply: FastifyReply, code: ErrorCode, message?: string): FastifyReply {
  return reply
    .code(errorTable[code].status)
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff')
    .type('application/json')
    .send(errorBody(code, message));
}

/** The admin token check: hash first, then compare fixed-length digests in constant time. */
export function checkAdminToken(token: string, expected: Buffer | undefined): AuthResult {
  if (!expected) return { ok: false, code: 'forbidden' };
  const digest = tokenDigest(token);
  return digest.length === expected.length && timingSafeEqual(digest, expected)
    ? { ok: true, clientTokenId: 'admin' }
    : { ok: false, code: 'unauthorized' };
}

export async function registerGuard(app: FastifyInstance, options: GuardOptions): Promise<void> {
  const log = options.logger;
  const isLocal = options.isLocal ?? isUnixSocketRequest;
  app.decorateRequest('credd', null);

  app.addHook('onRequest', async (request, reply) => {
    const problem = requestProblem(request.raw, options.hosts);
    if (problem) return sendError(reply, problem.code, problem.message);
    const workspace = (request.params as { workspace?: unknown } | undefined)?.workspace;
    if (workspace !== undefined && (typeof workspace !== 'string' || !isWorkspaceName(workspace))) {
      return sendError(reply, 'not_found');
    }
    const needs = request.routeOptions.config?.auth ?? 'none';
    if (needs === 'none') {
      request.credd = { auth: null };
      return;
    }
    // The admin routes do not exist on TCP: the admin token never needs to travel there, and
    // whoever holds the port while the daemon is down learns nothing from the CLI (#12).
    const local = isLocal(request.raw);
    if (needs === 'admin' && !local) return sendError(reply, 'not_found');
    const token = presentedToken(request.headers.authorization);
    let auth: AuthResult;
    if (token === null) auth = { ok: false, code: 'unauthorized' };
    else if (needs === 'admin') auth = checkAdminToken(token, options.adminTokenHash);
    else if (needs === 'metrics') {
      auth = checkAdminToken(token, options.metricsTokenHash);
      if (!auth.ok && local) auth = checkAdminToken(token, options.adminTokenHash);
    } else auth = options.source.authenticate(workspace ?? '', token);
    request.credd = { auth };
  });

  // One warning per source and window when the limit is hit, however many requests follow.
  const warned = new Map<string, number>();
  await app.register(rateLimit, {
    global: true,
    max: options.failedAuth.max,
    timeWindow: options.failedAuth.timeWindowMs,
    // Only failed authentications count: a request that passed the token check is never limited.
    allowList: (request) => request.credd?.auth === null || request.credd?.auth?.ok === true,
    keyGenerator: (request) => request.ip ?? 'unix-socket',
    onExceeded: (request, key) => {
      const now = Date.now();
      if ((warned.get(key) ?? 0) > now) return;
      if (warned.size > 1_000) warned.clear();
      warned.set(key, now + options.failedAuth.timeWindowMs);
      log.warn(
        { remote: request.ip, max: options.failedAuth.max },
        'too many failed authentications: source throttled',
      );
    },
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      ...errorBody('too_many_requests', `Too many failed attempts; retry in ${Math.ceil(context.ttl / 1000)} s.`),
    }),
  });

  app.addHook('preValidation', async (request, reply) => {
    const auth = request.credd?.auth;
    if (auth && !auth.ok) {
      const workspace = (request.params as { workspace?: string } | undefined)?.workspace ?? null;
      log.info(
        { remote: request.ip, workspace, route: request.routeOptions.url, code: auth.code },
        'request refused: client token not valid here',
      );
      return sendError(reply, auth.code);
    }
  });
}

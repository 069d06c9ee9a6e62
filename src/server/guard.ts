/**
 * The guard in front of every route. Loopback is reachable by every local user, every container
 * with host networking and every web page the user opens, so:
 * - Host must name the loopback address and port we serve (DNS rebinding);
 * - anything a browser sends (Origin, Sec-Fetch-Site other than "none") is refused;
 * - request bodies are refused (no route takes one);
 * - the client token is checked by the CredentialSource in constant time;
 * - failed authentications are rate limited per source address; valid clients never are.
 * Authentication is decided in onRequest and enforced in preValidation, so the rate limiter (a
 * route-level onRequest hook, which runs in between) can count exactly the failures.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import type { AuthResult, CredentialSource } from '../core/source.js';
import { errorBody, errorTable, type ErrorCode } from '../core/errors.js';
import type { HostPolicy } from './hosts.js';

/** Which credential a route wants: a workspace's client token, the admin token, or none. */
export type RouteAuth = 'workspace' | 'admin' | 'none';

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
  /** SHA-256 of the admin token; admin routes are closed when absent. */
  readonly adminTokenHash?: Buffer | undefined;
  readonly failedAuth: { readonly max: number; readonly timeWindowMs: number };
}

export function sendError(reply: FastifyReply, code: ErrorCode, message?: string): FastifyReply {
  return reply.code(errorTable[code].status).type('application/json').send(errorBody(code, message));
}

/** The token as sent: container-credential clients send it raw; scripts may add "Bearer ". */
function presentedToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  return header.startsWith('Bearer ') ? header.slice(7) : header;
}

function checkAdmin(token: string, expected: Buffer | undefined): AuthResult {
  if (!expected) return { ok: false, code: 'forbidden' };
  const digest = createHash('sha256').update(token, 'utf8').digest();
  return timingSafeEqual(digest, expected) ? { ok: true, clientTokenId: 'admin' } : { ok: false, code: 'unauthorized' };
}

export async function registerGuard(app: FastifyInstance, options: GuardOptions): Promise<void> {
  app.decorateRequest('credd', null);

  app.addHook('onRequest', async (request, reply) => {
    if (!options.hosts.allows(request.headers.host)) return sendError(reply, 'forbidden_host');
    const fetchSite = request.headers['sec-fetch-site'];
    if (request.headers.origin !== undefined || (fetchSite !== undefined && fetchSite !== 'none')) {
      return sendError(reply, 'forbidden_browser');
    }
    if (request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0) {
      return sendError(reply, 'bad_request', 'Request bodies are not accepted.');
    }
    const needs = request.routeOptions.config?.auth ?? 'none';
    if (needs === 'none') {
      request.credd = { auth: null };
      return;
    }
    const token = presentedToken(request);
    let auth: AuthResult;
    if (token === null || token.length === 0) auth = { ok: false, code: 'unauthorized' };
    else if (needs === 'admin') auth = checkAdmin(token, options.adminTokenHash);
    else auth = options.source.authenticate((request.params as { workspace?: string }).workspace ?? '', token);
    request.credd = { auth };
  });

  await app.register(rateLimit, {
    global: true,
    max: options.failedAuth.max,
    timeWindow: options.failedAuth.timeWindowMs,
    // Only failed authentications count: a request that passed the token check is never limited.
    allowList: (request) => request.credd?.auth === null || request.credd?.auth?.ok === true,
    keyGenerator: (request) => request.ip,
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      ...errorBody('too_many_requests', `Too many failed attempts; retry in ${Math.ceil(context.ttl / 1000)} s.`),
    }),
  });

  app.addHook('preValidation', async (request, reply) => {
    const auth = request.credd?.auth;
    if (auth && !auth.ok) return sendError(reply, auth.code);
  });
}

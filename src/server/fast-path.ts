/**
 * The hot path: GET/HEAD of a workspace's credentials or API key, and /healthz, answered straight
 * on node:http. Every AWS client polls the credentials route, so it is kept to the work the answer
 * needs: the shared request checks, one token digest, a lookup in the broker's memory and a body
 * serialised once per credential. No database read, no log line (but the first hand-out of a
 * credential to a client), no framework.
 *
 * It says yes, never no: a request it does not positively accept (any failed check, a bad or
 * missing token, an odd path, a query string, percent-encoding) is handed on untouched to the
 * fastify app, whose guard refuses it with the reason and counts failed authentications for the
 * rate limit. So the refusal logic exists once, and a valid client never waits for the framework.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { type ErrorCode, errorBody, errorTable } from '../core/errors.js';
import type { CredentialSource } from '../core/source.js';
import type { S3Credentials } from '../core/types.js';
import { isWorkspaceName } from '../core/workspace-name.js';
import { apiKeyAnswer, BodyCache, containerCredentials } from './answers.js';
import type { AuditTrail } from './audit.js';
import type { HostPolicy } from './hosts.js';
import { presentedToken, requestProblem } from './request-checks.js';

export interface FastPathOptions {
  readonly source: CredentialSource;
  readonly hosts: HostPolicy;
  readonly audit: AuditTrail;
  readonly logger: Logger;
  /** Called for each credential handed out (GET answered 200). */
  readonly onServed?: ((workspace: string) => void) | undefined;
}

/** Takes the request (true) or leaves it, untouched, for the next handler (false). */
export type RequestTaker = (request: IncomingMessage, response: ServerResponse) => boolean;

const WORKSPACES = '/v1/workspaces/';
const HEALTHZ_BODY = Buffer.from(JSON.stringify({ status: 'ok' }));

type Route = { readonly kind: 'healthz' } | { readonly kind: 'credentials' | 'token'; readonly workspace: string };

/** The route of a plain path, or null for anything else (query strings included). */
function routeOf(url: string): Route | null {
  if (url === '/healthz') return { kind: 'healthz' };
  if (!url.startsWith(WORKSPACES)) return null;
  const slash = url.indexOf('/', WORKSPACES.length);
  if (slash < 0) return null;
  const workspace = url.slice(WORKSPACES.length, slash);
  const rest = url.slice(slash);
  const kind = rest === '/credentials' ? 'credentials' : rest === '/token' ? 'token' : null;
  return kind && isWorkspaceName(workspace) ? { kind, workspace } : null;
}

function send(response: ServerResponse, status: number, body: Buffer): void {
  // The headers every answer of the daemon carries (see the onSend hook of the fastify app).
  response.writeHead(status, [
    'content-type',
    'application/json; charset=utf-8',
    'content-length',
    String(body.length),
    'cache-control',
    'no-store',
    'x-content-type-options',
    'nosniff',
  ]);
  // Node sends no body for HEAD whatever is written; end() without one says so plainly.
  if (response.req.method === 'HEAD') response.end();
  else response.end(body);
}

function sendError(response: ServerResponse, code: ErrorCode, message?: string): void {
  send(response, errorTable[code].status, Buffer.from(JSON.stringify(errorBody(code, message))));
}

export function fastPath(options: FastPathOptions): RequestTaker {
  const { source, hosts, audit, logger } = options;
  const bodies = new BodyCache<S3Credentials>(containerCredentials);

  const handOut = (
    request: IncomingMessage,
    response: ServerResponse,
    workspace: string,
    clientTokenId: string,
    creds: S3Credentials,
  ) => {
    if (request.method === 'GET') {
      // HEAD sends no body, so nothing is handed out.
      audit.handedOut(workspace, clientTokenId, request.socket.remoteAddress ?? '', creds);
      options.onServed?.(workspace);
    }
    send(response, 200, bodies.body(creds));
  };

  /** The credential is due for renewal (or missing): the broker renews, waiting a bounded time. */
  const renewThenAnswer = async (
    request: IncomingMessage,
    response: ServerResponse,
    workspace: string,
    clientTokenId: string,
  ) => {
    try {
      const creds = await source.credentials(workspace);
      if (creds) handOut(request, response, workspace, clientTokenId, creds);
      else sendError(response, 'no_credentials');
    } catch (err) {
      // Internals stay in the log; the client learns nothing.
      logger.error({ err, route: 'credentials' }, 'request failed');
      if (!response.headersSent) sendError(response, 'internal');
      else response.destroy();
    }
  };

  return (request, response) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return false;
    const route = routeOf(request.url ?? '');
    if (!route || requestProblem(request, hosts)) return false;
    if (route.kind === 'healthz') {
      send(response, 200, HEALTHZ_BODY);
      return true;
    }
    const token = presentedToken(request.headers.authorization);
    const auth = token === null ? null : source.authenticate(route.workspace, token);
    if (!auth?.ok) return false;
    if (route.kind === 'credentials') {
      const fresh = source.freshCredentials(route.workspace);
      if (fresh) handOut(request, response, route.workspace, auth.clientTokenId, fresh);
      else void renewThenAnswer(request, response, route.workspace, auth.clientTokenId);
      return true;
    }
    const key = source.apiKey(route.workspace);
    if (!key) {
      sendError(response, 'no_credentials', 'The workspace has no usable API key.');
      return true;
    }
    if (request.method === 'GET')
      audit.apiKeyHandedOut(route.workspace, auth.clientTokenId, request.socket.remoteAddress ?? '', key.tokenId);
    send(response, 200, Buffer.from(JSON.stringify(apiKeyAnswer(route.workspace, key))));
    return true;
  };
}

/**
 * The HTTP app factory: builds the fastify instance, never listens (the caller does, so tests use
 * inject() or a real ephemeral port alike). The server reads a CredentialSource and nothing else.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AdminActions, CredentialSource } from '../core/source.js';
import type { Duplex } from 'node:stream';
import { errorBody, errorTable } from '../core/errors.js';
import { rfc3339 } from '../core/time.js';
import { registerGuard, sendError } from './guard.js';
import type { HostPolicy } from './hosts.js';
import { apiKeySchema, containerCredentialsSchema, errorSchema, okSchema, workspaceParams } from './schemas.js';
import { AuditTrail } from './audit.js';

export interface AppOptions {
  readonly source: CredentialSource;
  readonly hosts: HostPolicy;
  readonly logger: Logger;
  readonly admin?: { readonly tokenHash: Buffer; readonly actions: AdminActions } | undefined;
  readonly metrics?: (() => Promise<string>) | undefined;
  readonly failedAuth?: { readonly max: number; readonly timeWindowMs: number } | undefined;
  /** Connection limits; the defaults suit every real client (tests shorten the timeouts). */
  readonly limits?: Partial<ConnectionLimits> | undefined;
}

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

const errorResponses = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 429: errorSchema, 500: errorSchema, 502: errorSchema, 503: errorSchema };

/**
 * Errors the HTTP parser raises before fastify sees a request (malformed request line, header
 * overflow, slow headers) get the same JSON body as every other error, and are logged by code
 * only: Node attaches the raw bytes of the request, Authorization header included.
 */
function clientErrorHandler(log: Logger) {
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

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const log = options.logger.child({ module: 'server' });
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // No line per request: the audit trail logs what matters, and the hot path stays free of I/O.
    logController: new LogController({ disableRequestLogging: true }),
    // And no child logger per request: fastify's default binds a reqId to a pino child for every
    // request, and with our redact paths that costs ~15-20 µs of the ~70-90 µs a credential
    // request takes (npm run bench). Nothing logs per request, so request.log is the server's.
    childLoggerFactory: () => log as FastifyBaseLogger,
    bodyLimit: 1024,
    routerOptions: { maxParamLength: 100 },
    http: {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      // How often Node looks for connections past those timeouts (its default is 30 s).
      connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
    },
    // Requests are answered from memory; a client that is this slow is not a client.
    connectionTimeout: limits.idleTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    clientErrorHandler: clientErrorHandler(log),
    // A path that does not decode (bad percent-encoding) or a parameter that is too long.
    frameworkErrors: (_err, _request, reply) => sendError(reply, 'bad_request'),
  });
  const audit = new AuditTrail(log);

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('cache-control', 'no-store');
    reply.header('x-content-type-options', 'nosniff');
    return payload;
  });

  app.setErrorHandler((err: { statusCode?: number; validation?: unknown }, request, reply) => {
    const status = err.statusCode ?? 500;
    if (status === 429) return sendError(reply, 'too_many_requests', (err as { message?: string }).message);
    if (status >= 500) {
      // Internals stay in the log (without the request's headers); the client learns nothing.
      log.error({ err, url: request.routeOptions.url }, 'request failed');
      return sendError(reply, 'internal');
    }
    if (err.validation) return sendError(reply, 'not_found', 'No such route or workspace.');
    return sendError(reply, 'bad_request');
  });
  app.setNotFoundHandler((_request, reply) => sendError(reply, 'not_found'));

  await registerGuard(app, {
    source: options.source,
    hosts: options.hosts,
    logger: log,
    adminTokenHash: options.admin?.tokenHash,
    failedAuth: options.failedAuth ?? { max: 20, timeWindowMs: 60_000 },
  });

  app.get('/healthz', { config: { auth: 'none' } }, async () => ({ status: 'ok' }));

  app.get<{ Params: { workspace: string } }>(
    '/v1/workspaces/:workspace/credentials',
    {
      config: { auth: 'workspace' },
      schema: { params: workspaceParams, response: { 200: containerCredentialsSchema, ...errorResponses } },
    },
    async (request, reply) => {
      const { workspace } = request.params;
      const creds = await options.source.credentials(workspace);
      if (!creds) return sendError(reply, 'no_credentials');
      const auth = request.credd?.auth;
      // HEAD sends no body, so nothing is handed out.
      if (auth?.ok && request.method === 'GET') audit.handedOut(workspace, auth.clientTokenId, request.ip, creds);
      return {
        AccessKeyId: creds.accessKeyId,
        SecretAccessKey: creds.secretAccessKey,
        Token: creds.sessionToken,
        Expiration: rfc3339(creds.expiresAt),
        ...(creds.accountId ? { AccountId: creds.accountId } : {}),
      };
    },
  );

  app.get<{ Params: { workspace: string } }>(
    '/v1/workspaces/:workspace/token',
    { config: { auth: 'workspace' }, schema: { params: workspaceParams, response: { 200: apiKeySchema, ...errorResponses } } },
    async (request, reply) => {
      const { workspace } = request.params;
      const key = options.source.apiKey(workspace);
      if (!key) return sendError(reply, 'no_credentials', 'The workspace has no usable API key.');
      const auth = request.credd?.auth;
      if (auth?.ok && request.method === 'GET') audit.apiKeyHandedOut(workspace, auth.clientTokenId, request.ip, key.tokenId);
      return {
        workspace,
        tokenId: key.tokenId,
        token: key.key,
        expiry: key.expiresAt === null ? null : rfc3339(key.expiresAt),
      };
    },
  );

  // Credential routes answer GET and HEAD only; say so instead of a bare 404.
  for (const url of ['/v1/workspaces/:workspace/credentials', '/v1/workspaces/:workspace/token']) {
    app.route({
      method: ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
      url,
      config: { auth: 'none' },
      handler: async (_request, reply) => sendError(reply.header('allow', 'GET, HEAD'), 'method_not_allowed'),
    });
  }

  if (options.admin) registerAdmin(app, options.admin.actions, options.metrics);

  return app;
}

function registerAdmin(app: FastifyInstance, actions: AdminActions, metrics: AppOptions['metrics']): void {
  const opts = { config: { auth: 'admin' as const }, schema: { params: workspaceParams, response: { 200: okSchema, ...errorResponses } } };
  app.get('/v1/admin/status', { config: { auth: 'admin' }, schema: { response: errorResponses } }, async () => actions.snapshot());
  for (const action of ['refresh', 'rotate'] as const) {
    app.post<{ Params: { workspace: string } }>(`/v1/admin/workspaces/:workspace/${action}`, opts, async (request, reply) => {
      const result = await actions[action](request.params.workspace);
      if (!result.ok) return reply.code(502).send(errorBody('no_credentials', result.error ?? `${action} failed`));
      return { ok: true };
    });
  }
  if (metrics) {
    app.get('/metrics', { config: { auth: 'admin' }, schema: { response: errorResponses } }, async (_request, reply) =>
      reply.type('text/plain; version=0.0.4').send(await metrics()),
    );
  }
}

/**
 * The daemon's one HTTP app: every route (credentials, API key, health, admin, metrics) on one
 * fastify instance, built at start-up. The guard (guard.ts) is the first onRequest hook of every
 * route and sets the common headers (listener.ts's table) on every reply; response schemas are the
 * leak guard (only declared fields go out). The app never listens itself: server.ts binds its sockets; tests
 * may use inject().
 */
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { Logger } from 'pino';
import { errorBody } from '../core/errors.js';
import type { AdminActions, CredentialSource } from '../core/source.js';
import type { S3Credentials } from '../core/types.js';
import { apiKeyAnswer, containerCredentials } from './answers.js';
import { AuditTrail } from './audit.js';
import { type PeerOptions, registerGuard, sendError } from './guard.js';
import type { HostPolicy } from './hosts.js';
import { type ConnectionLimits, createHttpServer, DEFAULT_LIMITS, type HttpServerControl } from './listener.js';
import { apiKeySchema, containerCredentialsSchema, errorSchema, okSchema, workspaceParams } from './schemas.js';

export interface AppOptions {
  readonly source: CredentialSource;
  readonly hosts: HostPolicy;
  readonly logger: Logger;
  /** Called for each credential handed out (GET answered 200). */
  readonly onServed?: ((workspace: string) => void) | undefined;
  readonly admin?:
    | {
        readonly tokenHash: Buffer;
        readonly actions: AdminActions;
        /** Opens /metrics, on TCP too. */
        readonly metricsTokenHash?: Buffer | undefined;
        /** Which requests came over the Unix socket, the only way to the admin routes (default: the real test). */
        readonly isLocal?: ((request: IncomingMessage) => boolean) | undefined;
      }
    | undefined;
  readonly metrics?: (() => Promise<string>) | undefined;
  readonly failedAuth?: { readonly max: number; readonly timeWindowMs: number } | undefined;
  /** Who may connect; by default the daemon's own uid, read from /proc/net. */
  readonly peers?: PeerOptions | undefined;
  readonly limits?: Partial<ConnectionLimits> | undefined;
}

const errorResponses = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  404: errorSchema,
  429: errorSchema,
  500: errorSchema,
  502: errorSchema,
  503: errorSchema,
};

/**
 * No line per request; the failures fastify reports itself (an answer that could not be
 * serialised or written) go to the daemon's log, by error only: the request's headers carry
 * tokens.
 */
class ServerDiagnostics extends LogController {
  constructor(private readonly log: Logger) {
    super({ disableRequestLogging: true });
  }

  override streamError(err: Error): void {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE')
      this.log.warn({ err }, 'answer failed after its headers were sent');
  }

  override writeHeadError(err: Error): void {
    this.log.warn({ err }, 'answer failed before its headers were sent');
  }

  override serializerError(err: Error, _request: FastifyRequest, _reply: FastifyReply, meta: { statusCode: number }) {
    this.log.error({ err, statusCode: meta.statusCode }, 'answer could not be serialised');
  }
}

export interface App {
  readonly fastify: FastifyInstance;
  /** Flipped by the graceful stop (answers then close their connections). */
  readonly control: HttpServerControl;
}

export async function buildApp(options: AppOptions): Promise<App> {
  const log = options.logger.child({ module: 'server' });
  const control: HttpServerControl = { stopping: false };
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const app = Fastify({
    serverFactory: (handler) => createHttpServer(handler, log, limits, control),
    // No logger for fastify. Given one, it makes a child logger for every request (a pino child,
    // or a checked call to a factory) and listens for the end of every answer to time it: a tenth
    // of a credential request's cost (README, Benchmarks). Nothing logs per request: the audit
    // trail logs what matters, and what fastify would report goes to ours, below.
    logger: false,
    logController: new ServerDiagnostics(log),
    bodyLimit: 1024,
    routerOptions: { maxParamLength: 100 },
    return503OnClosing: true,
    // A path that does not decode (bad percent-encoding) or a parameter that is too long.
    frameworkErrors: (_err, _request, reply) => sendError(reply, 'bad_request'),
  });
  const audit = new AuditTrail(log);

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

  await registerGuard(app, {
    source: options.source,
    hosts: options.hosts,
    logger: log,
    adminTokenHash: options.admin?.tokenHash,
    metricsTokenHash: options.admin?.metricsTokenHash,
    isLocal: options.admin?.isLocal,
    failedAuth: options.failedAuth ?? { max: 20, timeWindowMs: 60_000 },
    peers: options.peers ?? { ownUid: process.getuid?.() ?? -1 },
  });

  app.get('/healthz', { config: { auth: 'none' } }, async () => ({ status: 'ok' }));

  // A credential is immutable and served thousands of times between renewals (every client polls
  // it), so its body is serialised once, by the route's response schema, and kept with it.
  const bodies = new WeakMap<S3Credentials, string>();

  /** A credential to the client: one audit line per credential and client, one count per GET. */
  const handOut = (reply: FastifyReply, workspace: string, creds: S3Credentials) => {
    const { request } = reply;
    const { clientTokenId } = request;
    // HEAD sends no body, so nothing is handed out.
    if (request.method === 'GET' && clientTokenId) {
      audit.handedOut(workspace, clientTokenId, request.ip, creds, request.peerUid, request.raw.socket);
      options.onServed?.(workspace);
    }
    let body = bodies.get(creds);
    if (body === undefined) {
      // The route's compiled schema serialiser, which returns a string.
      body = String(reply.serialize(containerCredentials(creds)));
      bodies.set(creds, body);
    }
    return reply.type('application/json; charset=utf-8').send(body);
  };

  app.get<{ Params: { workspace: string } }>(
    '/v1/workspaces/:workspace/credentials',
    {
      config: { auth: 'workspace' },
      schema: { params: workspaceParams, response: { 200: containerCredentialsSchema, ...errorResponses } },
    },
    (request, reply) => {
      const { workspace } = request.params;
      // The answer to almost every request: the held credential, from memory, synchronously.
      const fresh = options.source.freshCredentials(workspace);
      if (fresh) return handOut(reply, workspace, fresh);
      // Due for renewal or missing: the source renews, waiting a bounded time.
      return options.source
        .credentials(workspace)
        .then((creds) => (creds ? handOut(reply, workspace, creds) : sendError(reply, 'no_credentials')));
    },
  );

  app.get<{ Params: { workspace: string } }>(
    '/v1/workspaces/:workspace/token',
    {
      config: { auth: 'workspace' },
      schema: { params: workspaceParams, response: { 200: apiKeySchema, ...errorResponses } },
    },
    async (request, reply) => {
      const { workspace } = request.params;
      const key = options.source.apiKey(workspace);
      if (!key) return sendError(reply, 'no_credentials', 'The workspace has no usable API key.');
      if (request.clientTokenId && request.method === 'GET')
        audit.apiKeyHandedOut(workspace, request.clientTokenId, request.ip, key.tokenId, request.peerUid);
      return apiKeyAnswer(workspace, key);
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

  return { fastify: app, control };
}

function registerAdmin(app: FastifyInstance, actions: AdminActions, metrics: AppOptions['metrics']): void {
  const opts = {
    config: { auth: 'admin' as const },
    schema: { params: workspaceParams, response: { 200: okSchema, ...errorResponses } },
  };
  app.get('/v1/admin/status', { config: { auth: 'admin' }, schema: { response: errorResponses } }, async () =>
    actions.snapshot(),
  );
  for (const action of ['refresh', 'rotate'] as const) {
    app.post<{ Params: { workspace: string } }>(
      `/v1/admin/workspaces/:workspace/${action}`,
      opts,
      async (request, reply) => {
        const result = await actions[action](request.params.workspace);
        if (!result.ok) return reply.code(502).send(errorBody('no_credentials', result.error ?? `${action} failed`));
        return { ok: true };
      },
    );
  }
  if (metrics) {
    app.get(
      '/metrics',
      { config: { auth: 'metrics' }, schema: { response: errorResponses } },
      async (_request, reply) => reply.type('text/plain; version=0.0.4').send(await metrics()),
    );
  }
}

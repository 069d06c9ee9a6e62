/**
 * The HTTP app factory: builds the fastify instance and never listens. The daemon's listener
 * (listener.ts) hands it, through `app.routing`, every request its fast path leaves; tests use
 * inject(). The server reads a CredentialSource and nothing else.
 */
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import { errorBody } from '../core/errors.js';
import type { AdminActions, CredentialSource } from '../core/source.js';
import { apiKeyAnswer, containerCredentials } from './answers.js';
import { AuditTrail } from './audit.js';
import { registerGuard, sendError } from './guard.js';
import type { HostPolicy } from './hosts.js';
import { apiKeySchema, containerCredentialsSchema, errorSchema, okSchema, workspaceParams } from './schemas.js';

export interface AppOptions {
  readonly source: CredentialSource;
  readonly hosts: HostPolicy;
  readonly logger: Logger;
  /** Shared with the fast path, so a credential is logged once per client whichever way it went. */
  readonly audit?: AuditTrail | undefined;
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

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const log = options.logger.child({ module: 'server' });
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
    return503OnClosing: true,
    // A path that does not decode (bad percent-encoding) or a parameter that is too long.
    frameworkErrors: (_err, _request, reply) => sendError(reply, 'bad_request'),
  });
  const audit = options.audit ?? new AuditTrail(log);

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
    metricsTokenHash: options.admin?.metricsTokenHash,
    isLocal: options.admin?.isLocal,
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
      if (auth?.ok && request.method === 'GET') {
        audit.handedOut(workspace, auth.clientTokenId, request.ip, creds);
        options.onServed?.(workspace);
      }
      return containerCredentials(creds);
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
      const auth = request.credd?.auth;
      if (auth?.ok && request.method === 'GET')
        audit.apiKeyHandedOut(workspace, auth.clientTokenId, request.ip, key.tokenId);
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

  return app;
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

/**
 * The EODH hub simulator: the workspace API of eodh-api.md (bearer auth, tokens, s3-tokens) plus
 * unauthenticated control routes under /_sim/ for tests and the demo. It only ever listens on
 * loopback, because the control routes can mint keys for anyone who can reach them.
 *
 * Logging is off: requests carry API keys and answers carry credentials.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import * as v from 'valibot';
import { type Clock, systemClock } from '../core/types.js';
import { randomMinter, rfc3339Seconds, type S3Minter, type StsOptions, stsMinter } from './credentials.js';
import { DEFAULT_SETTINGS, FAULT_MODES, HubSimState, type Route, type Settings, type SimToken } from './state.js';

export interface HubSimulatorOptions {
  /** Lifetime of minted S3 credentials (the hub's is one hour). */
  readonly s3LifetimeSeconds?: number;
  /** Length of one "day" of API-key lifetime, so tests can shrink 30-day keys to seconds. */
  readonly dayMs?: number;
  /** Longest API-key lifetime accepted, in days (the hub caps it at 30). */
  readonly maxTokenDays?: number;
  readonly clock?: Clock;
  /** Mint real credentials from this STS endpoint (e.g. moto_server) instead of random strings. */
  readonly sts?: StsOptions;
  /** Whether an API key may create another key (UNCERTAIN on the real hub). */
  readonly allowMintWithApiKey?: boolean;
  /** Any other switch of Settings (what the hub's token API does for API keys). */
  readonly settings?: Partial<Settings>;
  /** The hub's clock runs this far ahead of `clock` (negative: behind): Date headers and minted expiry times. */
  readonly clockSkewMs?: number;
}

export interface HubSimulator {
  readonly app: FastifyInstance;
  readonly state: HubSimState;
}

const DEFAULT_USER = 'sim-user';

/** Go's time.Time.String() in UTC, as hubs before February 2025 wrote times: "2025-02-18 16:17:54 +0000 UTC". */
export function goTime(ms: number): string {
  return `${rfc3339Seconds(ms).replace('T', ' ').replace('Z', '')} +0000 UTC`;
}

/** A time as the hub writes it under the given format. */
export function hubTime(ms: number, format: Settings['timeFormat'] = 'rfc3339'): string {
  return format === 'go' ? goTime(ms) : new Date(ms).toISOString();
}

/** A token record as the API shows it (the key itself only when just created). */
export function tokenRecord(
  t: SimToken,
  withKey: boolean,
  format: Settings['timeFormat'] = 'rfc3339',
): Record<string, string> {
  const record: Record<string, string> = {
    id: t.id,
    user_id: t.userId,
    workspace: t.workspace,
    name: t.name,
    scope: t.scope,
    created: hubTime(t.created, format),
    expiry: hubTime(t.expiry, format),
  };
  if (withKey) record.token = t.token;
  return record;
}

/** Error answers as JSON, or as text/plain "message\n" like the workspace services (errorFormat). */
function fail(reply: FastifyReply, status: number, error: string, message: string, asText = false): FastifyReply {
  if (asText) return reply.code(status).type('text/plain; charset=utf-8').send(`${message}\n`);
  return reply.code(status).send({ error, message });
}

function parseBody<S extends v.GenericSchema>(schema: S, body: unknown): v.InferOutput<S> | null {
  const value = body === undefined ? {} : body;
  // A JSON array is not an object, even when every field is optional.
  if (Array.isArray(value)) return null;
  const result = v.safeParse(schema, value, { abortEarly: true });
  return result.success ? result.output : null;
}

/** A whole number in [min, max]. */
const whole = (min = -Infinity, max = Infinity) => v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));
const text = (min: number, max: number) => v.pipe(v.string(), v.minLength(min), v.maxLength(max));

function bearer(request: FastifyRequest): string | null {
  const m = /^Bearer +(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  return m?.[1] ?? null;
}

interface WsParams {
  ws: string;
}

export function createHubSimulator(options: HubSimulatorOptions = {}): HubSimulator {
  const clock = options.clock ?? systemClock;
  const state = new HubSimState({
    clock,
    dayMs: options.dayMs ?? 86_400_000,
    maxTokenDays: options.maxTokenDays ?? 30,
    settings: {
      ...DEFAULT_SETTINGS,
      ...options.settings,
      s3LifetimeSeconds: options.s3LifetimeSeconds ?? options.settings?.s3LifetimeSeconds ?? 3600,
      allowMintWithApiKey: options.allowMintWithApiKey ?? options.settings?.allowMintWithApiKey ?? true,
      clockSkewMs: options.clockSkewMs ?? options.settings?.clockSkewMs ?? 0,
    },
  });
  const minter: S3Minter = options.sts ? stsMinter(options.sts) : randomMinter({ now: () => state.hubNow() });
  const refuse = (reply: FastifyReply, status: number, error: string, message: string) =>
    fail(reply, status, error, message, state.settings.errorFormat === 'text');
  const app = Fastify({ logger: false, forceCloseConnections: true });

  // Accept an empty JSON body (s3-tokens has none, and some clients still send the header).
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(Object.assign(new Error('The request body is not valid JSON.'), { statusCode: 400 }), undefined);
    }
  });

  app.setErrorHandler((err: { statusCode?: number }, _request, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    return status === 500
      ? refuse(reply, 500, 'internal', 'Internal error.')
      : refuse(reply, status, 'bad_request', 'The request is malformed.');
  });
  app.setNotFoundHandler((_request, reply) => refuse(reply, 404, 'not_found', 'No such route.'));
  app.addHook('onClose', async () => minter.close());
  // Every answer carries the hub's Date (Node would stamp the machine's time, not the injected clock's).
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('date', new Date(state.hubNow()).toUTCString());
  });

  app.register(async (api) => {
    const routeOf = (request: FastifyRequest): Route | null => {
      const url = request.routeOptions.url ?? '';
      if (url.endsWith('/s3-tokens')) return 's3Tokens';
      if (url.endsWith('/tokens/:id')) return 'deleteTokens';
      if (url.endsWith('/tokens')) return request.method === 'GET' ? 'listTokens' : 'mintTokens';
      return null;
    };

    // Every call is counted, faulted or not, so tests can see how often a client tried.
    api.addHook('onRequest', async (request, reply) => {
      const route = routeOf(request);
      const ws = (request.params as Partial<WsParams>).ws ?? '';
      if (route) {
        state.count(ws, route);
        state.logCall(ws, route);
      }
      const fault = state.takeFault(route);
      if (!fault) return;
      switch (fault.mode) {
        case 'down':
          reply.hijack();
          request.raw.socket.destroy();
          return;
        case 'error500':
          return refuse(reply, 500, 'internal', 'Simulated server error.');
        case 'rate_limited':
          if (fault.retryAfter !== '') reply.header('retry-after', fault.retryAfter);
          return refuse(reply, 429, 'rate_limited', 'Too many requests.');
        case 'unavailable':
          if (fault.retryAfter !== '') reply.header('retry-after', fault.retryAfter);
          return refuse(reply, 503, 'unavailable', 'Service unavailable.');
        case 'mint_unauthorized':
          return refuse(reply, 401, 'unauthorized', 'Not authorised to create tokens.');
        case 'mint_forbidden':
          return refuse(reply, 403, 'forbidden', 'Forbidden.');
        case 's3_forbidden':
          return refuse(reply, 403, 'forbidden', 'Forbidden.');
        case 'garbage':
          if (state.nextGarbageIsText()) {
            return reply.code(200).type('application/json').send('<html><body>Bad gateway</body></html>');
          }
          return reply.code(200).type('application/json').send('{"unexpected":true}');
        case 'slow': {
          const socket = request.raw.socket;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, fault.delayMs);
            function done(): void {
              clearTimeout(timer);
              socket.off('close', done);
              resolve();
            }
            socket.once('close', done);
          });
          // The client gave up (or the simulator is closing): nobody is left to answer.
          if (socket.destroyed) reply.hijack();
          return;
        }
        case 'none':
          return;
      }
    });

    /** The bearer check; sends the refusal and returns null when the key is not good for `ws`. */
    const authorise = (request: FastifyRequest<{ Params: WsParams }>, reply: FastifyReply): SimToken | null => {
      const result = state.authenticate(bearer(request), request.params.ws);
      if (result.ok) return result.token;
      if (result.status === 401) refuse(reply, 401, 'unauthorized', 'Invalid or expired API key.');
      else refuse(reply, 403, 'forbidden', 'This API key is not valid for this workspace.');
      return null;
    };

    api.get<{ Params: WsParams }>('/api/workspaces/:ws/me/tokens', async (request, reply) => {
      const me = authorise(request, reply);
      if (!me) return reply;
      const refused = state.settings.listRefusedStatus;
      if (refused !== null) return refuse(reply, refused, 'refused', 'Workspace-scoped tokens may not list tokens.');
      const format = state.settings.timeFormat;
      return state.tokensOf(me.workspace, me.userId).map((t) => tokenRecord(t, false, format));
    });

    // `expires` (days, fractions allowed) is optional: pyeodh sends only a name.
    const MintBody = v.object({
      name: text(1, 200),
      expires: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(state.maxTokenDays))),
      scope: v.optional(text(0, 1000)),
    });

    api.post<{ Params: WsParams }>('/api/workspaces/:ws/me/tokens', async (request, reply) => {
      const me = authorise(request, reply);
      if (!me) return reply;
      const refused = state.settings.mintRefusedStatus ?? (state.settings.allowMintWithApiKey ? null : 403);
      if (refused !== null) {
        return refuse(reply, refused, 'refused', 'API keys cannot create API keys; use the web interface.');
      }
      const body = parseBody(MintBody, request.body);
      if (!body) {
        return refuse(reply, 400, 'bad_request', `Expected {name, expires?: 0..${state.maxTokenDays} days, scope?}.`);
      }
      // A hub may finish the mint after the client gave up (mintDelayMs): the key then exists unseen.
      const delayMs = state.settings.mintDelayMs;
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      const days = Math.min(body.expires ?? state.maxTokenDays, state.settings.grantedKeyDays ?? Infinity);
      const created = state.createToken({
        workspace: me.workspace,
        userId: me.userId,
        name: body.name,
        ...(body.scope === undefined ? {} : { scope: body.scope }),
        lifetimeMs: Math.round(days * state.dayMs),
      });
      if (request.raw.socket.destroyed) return reply.hijack();
      return reply.code(201).send(tokenRecord(created, true, state.settings.timeFormat));
    });

    api.delete<{ Params: WsParams & { id: string } }>('/api/workspaces/:ws/me/tokens/:id', async (request, reply) => {
      const me = authorise(request, reply);
      if (!me) return reply;
      const refused = state.settings.deleteRefusedStatus;
      if (refused !== null) return refuse(reply, refused, 'refused', 'Workspace-scoped tokens may not delete tokens.');
      if (!state.revoke(me.workspace, me.userId, request.params.id))
        return refuse(reply, 404, 'not_found', 'No such token.');
      return reply.code(204).send();
    });

    api.post<{ Params: WsParams }>('/api/workspaces/:ws/me/s3-tokens', async (request, reply) => {
      const me = authorise(request, reply);
      if (!me) return reply;
      const answer = await minter.mint(me.workspace, me.userId, state.settings.s3LifetimeSeconds);
      if (state.settings.timeFormat !== 'go') return answer;
      return { ...answer, expiration: goTime(Date.parse(answer.expiration)) };
    });

    // The workspace's own description; only its object stores are simulated (eodh-api.md).
    api.get<{ Params: WsParams }>('/api/workspaces/:ws', async (request, reply) => {
      const me = authorise(request, reply);
      if (!me) return reply;
      const bucket = state.workspaceBucket;
      return {
        name: me.workspace,
        stores: {
          object: [
            {
              store_id: `${me.workspace}-object-store`,
              name: me.workspace,
              bucket,
              prefix: `${me.workspace}/`,
              host: `${bucket}.s3.eu-west-2.amazonaws.com`,
              env_var: 'S3_BUCKET',
              access_point_arn: `arn:aws:s3:eu-west-2:000000000000:accesspoint/eodhp-${me.workspace}`,
              access_url: `https://${me.workspace}.eodatahub-workspaces.org.uk/files/${bucket}/`,
            },
          ],
        },
      };
    });
  });

  app.register(
    async (sim) => {
      const CreateKey = v.object({
        name: v.optional(text(1, 200)),
        expiresDays: v.optional(whole(1, state.maxTokenDays)),
        expiresInMs: v.optional(whole()),
        user: v.optional(text(1, 200)),
      });
      let made = 0;

      // A key made as the web UI would, with a browser session rather than a bearer key.
      sim.post<{ Params: WsParams }>('/workspaces/:ws/tokens', async (request, reply) => {
        const body = parseBody(CreateKey, request.body);
        if (!body) return refuse(reply, 400, 'bad_request', 'Expected {name?, expiresDays?, expiresInMs?, user?}.');
        made += 1;
        const created = state.createToken({
          workspace: request.params.ws,
          userId: body.user ?? DEFAULT_USER,
          name: body.name ?? `sim-key-${made}`,
          lifetimeMs: body.expiresInMs ?? (body.expiresDays ?? state.maxTokenDays) * state.dayMs,
        });
        return reply.code(201).send(tokenRecord(created, true));
      });

      sim.get('/tokens', async () =>
        state.allTokens().map((t) => ({ ...tokenRecord(t, false), revoked: t.revoked, expired: state.isExpired(t) })),
      );

      const FaultBody = v.object({
        mode: v.picklist(FAULT_MODES),
        delayMs: v.optional(whole(0, 600_000)),
        count: v.optional(whole(1)),
        retryAfter: v.optional(text(0, 100)),
      });
      sim.put('/faults', async (request, reply) => {
        const body = parseBody(FaultBody, request.body);
        if (!body)
          return refuse(
            reply,
            400,
            'bad_request',
            `Expected {mode: ${FAULT_MODES.join('|')}, delayMs?, count?, retryAfter?}.`,
          );
        state.setFault(body.mode, body);
        return state.currentFault();
      });

      const status = v.nullable(whole(300, 499));
      const SettingsBody = v.strictObject({
        s3LifetimeSeconds: v.optional(whole(1, 129_600)),
        allowMintWithApiKey: v.optional(v.boolean()),
        listRefusedStatus: v.optional(status),
        mintRefusedStatus: v.optional(status),
        deleteRefusedStatus: v.optional(status),
        listSpansWorkspaces: v.optional(v.boolean()),
        mintDelayMs: v.optional(whole(0, 600_000)),
        grantedKeyDays: v.optional(v.nullable(v.pipe(v.number(), v.minValue(0), v.maxValue(state.maxTokenDays)))),
        timeFormat: v.optional(v.picklist(['rfc3339', 'go'])),
        errorFormat: v.optional(v.picklist(['json', 'text'])),
        clockSkewMs: v.optional(whole(-86_400_000, 86_400_000)),
      });
      sim.put('/settings', async (request, reply) => {
        const body = parseBody(SettingsBody, request.body);
        if (!body)
          return refuse(reply, 400, 'bad_request', `Expected {${Object.keys(DEFAULT_SETTINGS).join('?, ')}?}.`);
        Object.assign(state.settings, body);
        return { ...state.settings };
      });

      sim.get('/stats', async () => state.stats());
      sim.get('/calls', async () => state.calls());
    },
    { prefix: '/_sim' },
  );

  return { app, state };
}

export interface StartedHubSimulator {
  /** e.g. "http://127.0.0.1:41234", without a trailing slash. */
  readonly url: string;
  readonly app: FastifyInstance;
  readonly state: HubSimState;
  close(): Promise<void>;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export async function startHubSimulator(
  options: HubSimulatorOptions & { readonly host?: string; readonly port?: number } = {},
): Promise<StartedHubSimulator> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopback(host)) {
    throw new Error(`The hub simulator listens on loopback only; ${host} is not a loopback address.`);
  }
  const { app, state } = createHubSimulator(options);
  await app.listen({ host, port: options.port ?? 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('The hub simulator has no TCP address.');
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { url: `http://${shownHost}:${address.port}`, app, state, close: () => app.close() };
}

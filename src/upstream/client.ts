/**
 * The EODH HTTP client: the only code that talks to the hub. Each call is a small number of
 * attempts, each with its own timeout; network failures, timeouts, 5xx and 429 are retried with
 * exponential backoff and jitter, anything else is final. Every answer is validated before it is
 * returned (see responses.ts). Nothing here logs; errors carry no body and no key.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { HubDateSample } from '../core/clock-sense.js';
import { type BackoffOptions, backoffDelay, RETRY_AFTER_CAP_MS } from '../core/policy.js';
import { type Clock, type Random, type S3Credentials, systemClock } from '../core/types.js';
import { classifyStatus, HubError, type HubErrorKind } from './errors.js';
import {
  type CreatedToken,
  InvalidAnswer,
  parseCreatedToken,
  parseS3Credentials,
  parseTokenList,
  parseWorkspaceInfo,
  type TokenList,
} from './responses.js';
import { assertHubUrlAllowed } from './url.js';

export interface HubClientOptions {
  /** Per attempt, covering the response body as well as the headers. */
  readonly timeoutMs: number;
  /** Extra attempts after the first, for retryable failures only. */
  readonly retries: number;
  readonly backoff: BackoffOptions;
  readonly random?: Random;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly userAgent?: string;
  /** Aborts every call in flight and every wait between attempts (the daemon stopping, #13). */
  readonly signal?: AbortSignal;
  /** Our clock, for the times in Date samples. */
  readonly clock?: Clock;
  /** Told the hub's Date header of every answer, to estimate the hub's clock offset (#13). */
  readonly onDate?: (sample: HubDateSample) => void;
}

export interface CreateTokenRequest {
  readonly name: string;
  /** Whole days; the hub caps this at 30. */
  readonly expiresDays: number;
  readonly scope?: string;
}

/** A hub answer is at most a few kilobytes; anything far larger is not one. */
const MAX_BODY_BYTES = 1024 * 1024;

interface Failure {
  readonly kind: HubErrorKind;
  readonly what: string;
  readonly status?: number;
  readonly retryAfterMs?: number;
  readonly retryable: boolean;
}

interface Answer {
  readonly status: number;
  readonly text: string;
}

export class HubClient {
  readonly baseUrl: URL;
  private readonly basePath: string;
  private readonly random: Random;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly userAgent: string;

  constructor(
    baseUrl: string,
    private readonly options: HubClientOptions,
  ) {
    this.baseUrl = assertHubUrlAllowed(baseUrl);
    this.basePath = this.baseUrl.pathname.replace(/\/+$/, '');
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? ((ms) => delay(ms));
    this.userAgent = options.userAgent ?? 'eodh-credd';
  }

  /** Fresh temporary S3 credentials for the workspace. `now` becomes issuedAt and is the reference for "already expired". */
  async s3Credentials(workspace: string, apiKey: string, now: number): Promise<S3Credentials> {
    const path = `${this.workspacePath(workspace)}/me/s3-tokens`;
    const answer = await this.request('POST', path, apiKey);
    return this.parse('POST', path, answer, (body) => parseS3Credentials(body, now));
  }

  async listTokens(workspace: string, apiKey: string): Promise<TokenList> {
    const path = `${this.workspacePath(workspace)}/me/tokens`;
    const answer = await this.request('GET', path, apiKey);
    return this.parse('GET', path, answer, parseTokenList);
  }

  /** The workspace's object store (bucket, prefix) from GET /api/workspaces/{ws}. */
  async workspaceInfo(workspace: string, apiKey: string): Promise<{ bucket: string | null; prefix: string | null }> {
    const path = this.workspacePath(workspace);
    const answer = await this.request('GET', path, apiKey);
    return this.parse('GET', path, answer, parseWorkspaceInfo);
  }

  async createToken(workspace: string, apiKey: string, request: CreateTokenRequest): Promise<CreatedToken> {
    const path = `${this.workspacePath(workspace)}/me/tokens`;
    const body: Record<string, unknown> = { name: request.name, expires: request.expiresDays };
    if (request.scope !== undefined) body.scope = request.scope;
    // Never retried here: minting is not idempotent, and a retry after a lost answer mints a
    // second key. The caller (rotation) marks its intent first and cleans up after a failure.
    const answer = await this.request('POST', path, apiKey, body, { retry: false });
    return this.parse('POST', path, answer, parseCreatedToken);
  }

  /** Revoke a token. A 404 means it is already gone, which is what the caller wanted. */
  async deleteToken(workspace: string, apiKey: string, id: string): Promise<void> {
    const path = `${this.workspacePath(workspace)}/me/tokens/${segment(id, 'token id')}`;
    try {
      await this.request('DELETE', path, apiKey);
    } catch (err) {
      if (err instanceof HubError && err.kind === 'not_found') return;
      throw err;
    }
  }

  private workspacePath(workspace: string): string {
    return `${this.basePath}/api/workspaces/${segment(workspace, 'workspace name')}`;
  }

  private parse<T>(method: string, path: string, answer: Answer, parser: (body: unknown) => T): T {
    try {
      let body: unknown;
      try {
        body = JSON.parse(answer.text);
      } catch {
        throw new InvalidAnswer('the hub answered with something that is not JSON');
      }
      return parser(body);
    } catch (err) {
      if (err instanceof InvalidAnswer) {
        throw new HubError('bad_response', err.message, { method, path, status: answer.status });
      }
      throw err;
    }
  }

  private async request(
    method: string,
    path: string,
    apiKey: string,
    jsonBody?: unknown,
    { retry = true }: { retry?: boolean } = {},
  ): Promise<Answer> {
    const url = new URL(path, this.baseUrl);
    const headers: Record<string, string> = {
      authorization: `Bearer ${apiKey}`,
      accept: 'application/json',
      'user-agent': this.userAgent,
    };
    if (jsonBody !== undefined) headers['content-type'] = 'application/json';
    const body = jsonBody === undefined ? undefined : JSON.stringify(jsonBody);
    const attempts = retry ? Math.max(0, Math.floor(this.options.retries)) + 1 : 1;

    for (let attempt = 1; ; attempt++) {
      this.throwIfStopped(method, path, attempt - 1);
      const outcome = await this.attempt(url, method, headers, body);
      this.throwIfStopped(method, path, attempt);
      if ('text' in outcome) return outcome;
      // A Retry-After longer than this call's own backoff is for the caller to schedule (#13):
      // one call does not sleep for minutes.
      const waitLonger = outcome.retryAfterMs !== undefined && outcome.retryAfterMs > this.options.backoff.maxMs;
      if (!outcome.retryable || attempt >= attempts || waitLonger) {
        throw new HubError(outcome.kind, outcome.what, {
          method,
          path,
          status: outcome.status,
          retryAfterMs: outcome.retryAfterMs,
          attempts: attempt,
        });
      }
      await this.pause(outcome.retryAfterMs ?? backoffDelay(attempt, this.options.backoff, this.random));
    }
  }

  private throwIfStopped(method: string, path: string, attempts: number): void {
    if (this.options.signal?.aborted) {
      throw new HubError('hub_down', 'the call was abandoned: eodh-credd is stopping', { method, path, attempts });
    }
  }

  /** The wait between attempts, cut short when the signal aborts. */
  private async pause(ms: number): Promise<void> {
    const { signal } = this.options;
    if (!signal) return this.sleep(ms);
    if (signal.aborted) return;
    let onAbort = () => {};
    const aborted = new Promise<void>((resolve) => {
      onAbort = resolve;
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([this.sleep(ms), aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private async attempt(
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
  ): Promise<Answer | Failure> {
    const timeoutMs = this.options.timeoutMs;
    const clock = this.options.clock ?? systemClock;
    const sentAt = clock.now();
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body,
        // A redirect could carry the bearer key to another host or downgrade to http: never follow one.
        redirect: 'manual',
        signal: this.options.signal
          ? AbortSignal.any([AbortSignal.timeout(timeoutMs), this.options.signal])
          : AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      return networkFailure(err, timeoutMs);
    }
    const hubDate = parseHttpDate(response.headers.get('date'));
    if (hubDate !== undefined) this.options.onDate?.({ hubDate, sentAt, receivedAt: clock.now() });

    if (response.status >= 200 && response.status < 300) {
      try {
        const text = await readCapped(response);
        if (text === null) {
          return {
            kind: 'bad_response',
            what: 'the hub answer is too large or not UTF-8 text',
            status: response.status,
            retryable: false,
          };
        }
        return { status: response.status, text };
      } catch (err) {
        return networkFailure(err, timeoutMs);
      }
    }

    // The body of an error answer is never read: it is not needed and may echo what we sent.
    await response.body?.cancel().catch(() => undefined);
    const { kind, what } = classifyStatus(response.status);
    // Retry-After comes with 429 and 503 (RFC 9110 §10.2.3); an HTTP-date in it is read against
    // the hub's own Date, so a skewed clock on either side does not stretch or shrink the wait.
    const retryAfterMs =
      response.status === 429 || response.status === 503
        ? parseRetryAfter(response.headers.get('retry-after'), RETRY_AFTER_CAP_MS, hubDate ?? clock.now())
        : undefined;
    return {
      kind,
      what,
      status: response.status,
      retryable: kind === 'rate_limited' || kind === 'hub_down',
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    };
  }
}

/** A path segment, percent-encoded. "." and ".." would be resolved away by URL parsing, so they are refused. */
function segment(value: string, what: string): string {
  if (value === '' || value === '.' || value === '..') {
    throw new RangeError(`Invalid ${what} for a hub request: ${JSON.stringify(value)}.`);
  }
  return encodeURIComponent(value);
}

function networkFailure(err: unknown, timeoutMs: number): Failure {
  const name = err instanceof Error ? err.name : '';
  if (name === 'TimeoutError' || name === 'AbortError') {
    return { kind: 'hub_down', what: `no answer from the hub within ${timeoutMs} ms`, retryable: true };
  }
  // undici reports "fetch failed" with the socket error as the cause; its code is enough to act on.
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  const code = typeof cause?.code === 'string' && /^[A-Z0-9_]+$/.test(cause.code) ? ` (${cause.code})` : '';
  return { kind: 'hub_down', what: `could not reach the hub${code}`, retryable: true };
}

/** Retry-After as delay-seconds or an HTTP-date, in ms, capped; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, capMs: number, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  let ms: number;
  if (/^\d+$/.test(text)) {
    ms = Number(text) * 1000;
  } else {
    const at = parseHttpDate(text);
    if (at === undefined) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(0, ms), capMs);
}

/** An HTTP-date (IMF-fixdate, e.g. "Tue, 18 Feb 2025 16:00:05 GMT") in epoch ms; undefined when it is not one. */
export function parseHttpDate(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  // An HTTP-date names the weekday and month; Date.parse alone would also take "-1" or "2025".
  if (!/^[A-Za-z]{3}, /.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

/** The response body as text, or null when it exceeds MAX_BODY_BYTES or is not valid UTF-8. */
async function readCapped(response: Response): Promise<string | null> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    return null;
  }
}

/**
 * What can go wrong talking to the hub, as a small set of kinds the scheduler can act on.
 * Messages name the request (method, path, status) and never include the response body or the
 * API key: bodies of error pages may echo request headers, and these messages reach logs and
 * `status` output.
 */

export type HubErrorKind =
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'rate_limited'
  | 'hub_down'
  | 'bad_response'
  | 'bad_request';

export interface HubErrorDetails {
  readonly method: string;
  /** The request path, without the hub's origin. */
  readonly path: string;
  readonly status?: number | undefined;
  /** From Retry-After on a 429 or 503, capped at 10 min: when the hub wants to be asked again. */
  readonly retryAfterMs?: number | undefined;
  /** How many requests were made before giving up. */
  readonly attempts?: number | undefined;
}

export class HubError extends Error {
  readonly kind: HubErrorKind;
  readonly status?: number | undefined;
  readonly retryAfterMs?: number | undefined;
  readonly method: string;
  readonly path: string;
  readonly attempts: number;

  constructor(kind: HubErrorKind, what: string, details: HubErrorDetails) {
    const attempts = details.attempts ?? 1;
    const status = details.status === undefined ? '' : ` ${details.status}`;
    const tries = attempts > 1 ? ` (after ${attempts} attempts)` : '';
    super(`${details.method} ${details.path}${status}: ${what}${tries}`);
    this.name = 'HubError';
    this.kind = kind;
    this.status = details.status;
    this.retryAfterMs = details.retryAfterMs;
    this.method = details.method;
    this.path = details.path;
    this.attempts = attempts;
  }
}

/**
 * True when the hub refused the API key itself (401, or 403 — which EODH also answers for a
 * valid-looking key in a known recurring fault). The remedy is a new key, not a retry.
 */
export function isKeyRejected(err: unknown): err is HubError {
  return err instanceof HubError && (err.kind === 'unauthorized' || err.kind === 'forbidden');
}

/** The kind for an HTTP error status, and what it means in words. */
export function classifyStatus(status: number): { kind: HubErrorKind; what: string } {
  if (status === 401) return { kind: 'unauthorized', what: 'the hub did not accept the API key' };
  if (status === 403) return { kind: 'forbidden', what: 'the hub refused this API key for this workspace or action' };
  if (status === 404) return { kind: 'not_found', what: 'the hub has no such resource' };
  if (status === 429) return { kind: 'rate_limited', what: 'the hub is limiting requests' };
  if (status === 400 || status === 422)
    return { kind: 'bad_request', what: 'the hub rejected the request as malformed' };
  if (status >= 500) return { kind: 'hub_down', what: 'the hub reported a server error' };
  if (status >= 300 && status < 400) {
    return { kind: 'bad_response', what: 'the hub answered with a redirect; check the hub URL' };
  }
  return { kind: 'bad_response', what: 'the hub answered with an unexpected status' };
}

/**
 * The checks every request passes before any route looks at it, as plain functions of the raw
 * request, run by the guard (which refuses, with a reason).
 */
import type { IncomingMessage } from 'node:http';
import type { ErrorCode } from '../core/errors.js';
import type { HostPolicy } from './hosts.js';
import { isUnixSocketRequest } from './unix-socket.js';

export interface RequestProblem {
  readonly code: ErrorCode;
  readonly message?: string;
}

/** Headers that must not appear twice: Node keeps the first and drops the rest without a word. */
const SINGLETON_HEADERS = new Set([
  'host',
  'authorization',
  'origin',
  'sec-fetch-site',
  'content-length',
  'transfer-encoding',
]);

function hasDuplicateSingleton(request: IncomingMessage): boolean {
  const { rawHeaders, headers } = request;
  // Node folds a repeated header into one entry (joined, kept as a list, or the first kept), so
  // as many entries as raw lines means nothing was repeated: the usual case, decided without
  // lower-casing every name.
  let entries = 0;
  for (const _ in headers) entries++;
  if (entries * 2 === rawHeaders.length) return false;
  let seen: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (!SINGLETON_HEADERS.has(name)) continue;
    seen ??= new Set();
    if (seen.has(name)) return true;
    seen.add(name);
  }
  return false;
}

const BODY_REFUSED: RequestProblem = { code: 'bad_request', message: 'Request bodies are not accepted.' };

/**
 * What is wrong with the request as a whole, or null:
 * - the target must be a plain path (an absolute-form "http://other.host/…" target would override
 *   Host), and the singleton headers may appear once each (a second Host must not slip past the
 *   check on the first);
 * - Host must name the loopback address and port we serve (DNS rebinding); on the Unix socket,
 *   which no browser can reach, any Host is fine;
 * - anything a browser sends (Origin, Sec-Fetch-Site other than "none") is refused;
 * - request bodies are refused (no route takes one).
 */
export function requestProblem(request: IncomingMessage, hosts: HostPolicy): RequestProblem | null {
  const { headers } = request;
  if (!request.url?.startsWith('/') || hasDuplicateSingleton(request)) return { code: 'bad_request' };
  if (!hosts.allows(headers.host) && !isUnixSocketRequest(request)) return { code: 'forbidden_host' };
  const fetchSite = headers['sec-fetch-site'];
  if (headers.origin !== undefined || (fetchSite !== undefined && fetchSite !== 'none'))
    return { code: 'forbidden_browser' };
  if (headers['transfer-encoding'] !== undefined) return BODY_REFUSED;
  const length = headers['content-length'];
  if (length !== undefined && Number(length) !== 0) return BODY_REFUSED;
  return null;
}

/** The token as sent: container-credential clients send it raw; scripts may add "Bearer ". */
export function presentedToken(header: string | undefined): string | null {
  if (!header) return null;
  const token = header.startsWith('Bearer ') ? header.slice(7) : header;
  return token.length > 0 ? token : null;
}

/**
 * Which hub URLs the daemon will send an API key to. The key is a bearer credential, so it only
 * travels over TLS; plain http is allowed for loopback addresses alone, where the hub simulator
 * runs. Messages show the origin and path, never user-info or a query (either could hold a secret).
 */
import { isIPv4 } from 'node:net';
import { EXIT, UserError } from '../core/errors.js';

function isLoopbackHost(hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true;
  // WHATWG URL parsing already normalised shorthand IPv4 forms such as "127.1" or "0x7f.1".
  return isIPv4(hostname) && hostname.startsWith('127.');
}

export function assertHubUrlAllowed(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UserError(
      'The hub URL is not a valid absolute URL (expected e.g. https://eodatahub.org.uk).',
      EXIT.CONFIG,
    );
  }
  const shown = `${parsed.origin}${parsed.pathname}`;
  if (parsed.username !== '' || parsed.password !== '') {
    throw new UserError(
      'The hub URL must not contain a user name or password; API keys are configured separately.',
      EXIT.CONFIG,
    );
  }
  // A bare trailing "?" or "#" leaves search/hash empty, so look at the text as well.
  if (parsed.search !== '' || parsed.hash !== '' || /[?#]/.test(url)) {
    throw new UserError(`The hub URL ${shown} must not have a query string or fragment.`, EXIT.CONFIG);
  }
  if (parsed.protocol === 'https:') return parsed;
  if (parsed.protocol === 'http:') {
    if (isLoopbackHost(parsed.hostname)) return parsed;
    throw new UserError(
      `The hub URL ${shown} uses plain http; API keys are only sent over https (http is allowed for loopback addresses such as 127.0.0.1).`,
      EXIT.CONFIG,
    );
  }
  throw new UserError(`The hub URL ${shown} must use https.`, EXIT.CONFIG);
}

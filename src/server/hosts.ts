/**
 * Which Host headers we answer. A web page can make the browser send requests to 127.0.0.1 under
 * a hostile DNS name (DNS rebinding); checking Host against the exact address and port we serve
 * stops that (aws-vault's EC2 server does the same for the same reason). Only IP literals and
 * "localhost" are accepted for loopback: no DNS name an attacker could point at us. A daemon told
 * to listen on a wildcard address (server.allow_non_loopback) answers the loopback names and the
 * machine's own interface addresses, again as literals only.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1';
  return false;
}

function isWildcard(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  return bare === '0.0.0.0' || bare === '::';
}

/** The host as it appears in a Host header: IPv6 literals in brackets, lower case. */
function hostLiteral(host: string): string {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return isIP(bare) === 6 ? `[${bare}]` : bare;
}

function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .map((i) => i.address);
}

/** Zone-scoped link-local addresses are left out: a Host header cannot name them portably. */
const isLinkLocal = (address: string): boolean => address.includes('%') || address.toLowerCase().startsWith('fe80:');

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];

export class HostPolicy {
  private allowed = new Set<string>();

  constructor(
    private listenHost: string,
    private readonly addresses: () => string[] = interfaceAddresses,
  ) {}

  /**
   * Called once the listener is bound and the port known; until then every Host is refused. The
   * address may change then too (sockets passed by systemd are bound where the .socket unit says).
   */
  setPort(port: number, listenHost: string = this.listenHost): void {
    this.listenHost = listenHost;
    const names = new Set<string>();
    if (isLoopbackHost(this.listenHost)) {
      for (const n of LOOPBACK_NAMES) names.add(n);
      names.add(hostLiteral(this.listenHost));
    } else if (isWildcard(this.listenHost)) {
      for (const n of LOOPBACK_NAMES) names.add(n);
      for (const a of this.addresses()) if (!isLinkLocal(a)) names.add(hostLiteral(a));
    } else {
      names.add(hostLiteral(this.listenHost));
    }
    this.allowed = new Set([...names].flatMap((n) => (port === 80 ? [n, `${n}:80`] : [`${n}:${port}`])));
  }

  allows(hostHeader: string | undefined): boolean {
    return hostHeader !== undefined && (this.allowed.has(hostHeader) || this.allowed.has(hostHeader.toLowerCase()));
  }

  /** The accepted Host values (for tests and diagnostics). */
  names(): string[] {
    return [...this.allowed];
  }
}

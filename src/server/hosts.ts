/**
 * Which Host headers we answer. A web page can make the browser send requests to 127.0.0.1 under
 * a hostile DNS name (DNS rebinding); checking Host against the exact loopback address and port we
 * serve stops that (aws-vault's EC2 server does the same for the same reason).
 */
import { isIP } from 'node:net';

export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1';
  return false;
}

export class HostPolicy {
  private allowed = new Set<string>();

  constructor(private readonly listenHost: string) {}

  /** Called once the listener is bound and the port known. */
  setPort(port: number): void {
    const names = isLoopbackHost(this.listenHost)
      ? ['127.0.0.1', 'localhost', '[::1]']
      : [this.listenHost.includes(':') ? `[${this.listenHost}]` : this.listenHost];
    if (isLoopbackHost(this.listenHost) && this.listenHost !== '127.0.0.1' && this.listenHost !== 'localhost') {
      names.push(this.listenHost.includes(':') ? `[${this.listenHost}]` : this.listenHost);
    }
    this.allowed = new Set(names.flatMap((n) => (port === 80 ? [n, `${n}:80`] : [`${n}:${port}`])));
  }

  allows(hostHeader: string | undefined): boolean {
    return hostHeader !== undefined && this.allowed.has(hostHeader.toLowerCase());
  }
}

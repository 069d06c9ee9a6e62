/**
 * The daemon's HTTP server put together: the app (built at start-up) on the sockets it serves.
 * Those are the ones systemd passed (socket activation), or else the configured address and port
 * plus, for the IPv4 loopback, its IPv6 twin [::1] on the same port (and the other way round):
 * clients that resolve `localhost` try both, and a twin left free could be bound by another user
 * to stand in for the daemon (#12).
 */
import type { Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { type AppOptions, buildApp } from './app.js';
import { type BoundAddress, type Endpoint, listenAll } from './listener.js';

export interface ServerOptions extends AppOptions {
  readonly host: string;
  readonly port: number;
  /** Listening sockets inherited from systemd; when given, host and port only name the service. */
  readonly inheritedFds?: readonly number[] | undefined;
}

export interface Listener {
  readonly app: FastifyInstance;
  readonly server: Server;
  /** The port of the first socket (the one clients are told about). */
  readonly port: number;
  readonly addresses: readonly BoundAddress[];
  /** Stop accepting, let requests in flight finish (their connections close after), close the app. */
  close(): Promise<void>;
}

/** The loopback twin of an address: the address clients resolving `localhost` may try instead. */
export function loopbackTwin(host: string): string | null {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === '127.0.0.1' || bare === 'localhost') return '::1';
  if (bare === '::1') return '127.0.0.1';
  return null;
}

function endpointsFor(options: ServerOptions): Endpoint[] {
  if (options.inheritedFds && options.inheritedFds.length > 0) return options.inheritedFds.map((fd) => ({ fd }));
  const host = options.host === 'localhost' ? '127.0.0.1' : options.host.replace(/^\[|\]$/g, '');
  const twin = loopbackTwin(host);
  return twin
    ? [
        { host, port: options.port },
        { host: twin, port: options.port },
      ]
    : [{ host, port: options.port }];
}

/** A machine without IPv6 on loopback has no [::1] for anyone to bind: nothing to guard. */
function noSuchAddress(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT';
}

export async function startServer(options: ServerOptions): Promise<Listener> {
  const { fastify, control } = await buildApp(options);
  await fastify.ready();
  const server = fastify.server;
  const endpoints = endpointsFor(options);
  let sockets: Awaited<ReturnType<typeof listenAll>> | undefined;
  try {
    // An ephemeral port (tests) may be free on 127.0.0.1 and taken on [::1]: try a few.
    for (let attempt = 0; !sockets; attempt++) {
      try {
        sockets = await listenAll(server, endpoints, control);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (endpoints.length > 1 && noSuchAddress(err)) endpoints.length = 1;
        else if (!(code === 'EADDRINUSE' && options.port === 0 && endpoints.length > 1 && attempt < 5)) throw err;
      }
    }
  } catch (err) {
    await fastify.close();
    throw err;
  }
  const bound = sockets;
  return {
    app: fastify,
    server,
    port: bound.addresses[0]?.port ?? options.port,
    addresses: bound.addresses,
    async close() {
      await bound.close();
      await fastify.close();
    },
  };
}

/**
 * The daemon's HTTP server put together: the listener, the fast path in front, the fastify app
 * behind it, built on first use (so `fastify` is imported only then, never at start-up).
 */
import type { AppOptions } from './app.js';
import { AuditTrail } from './audit.js';
import { fastPath } from './fast-path.js';
import { type ConnectionLimits, type Listener, listen } from './listener.js';

export interface ServerOptions extends Omit<AppOptions, 'audit'> {
  readonly host: string;
  readonly port: number;
  readonly limits?: Partial<ConnectionLimits> | undefined;
}

export function startServer(options: ServerOptions): Promise<Listener> {
  const logger = options.logger.child({ module: 'server' });
  // One trail for both ways in: a credential is logged once per client whichever way it went.
  const audit = new AuditTrail(logger);
  return listen({
    host: options.host,
    port: options.port,
    logger,
    limits: options.limits,
    fastPath: fastPath({ source: options.source, hosts: options.hosts, audit, logger, onServed: options.onServed }),
    buildControl: async () => {
      const { buildApp } = await import('./app.js');
      const app = await buildApp({ ...options, audit });
      await app.ready();
      return { handler: app.routing, close: () => app.close() };
    },
  });
}

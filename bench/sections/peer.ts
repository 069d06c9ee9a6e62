/**
 * 6. The peer check's cost per new connection (#12): looking up the uid of the process on the
 * other end of a loopback connection in /proc/net/tcp, as the daemon does once per connection.
 * Real connections to a listener in this process; each lookup is a fresh read of the table (the
 * daemon shares one read among the connections that arrive together, so under a burst the cost
 * per connection is lower). Keep-alive requests after the first cost nothing.
 */
import { readFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { lookupPeerUid } from '../../src/server/peer.js';

export interface PeerResult {
  readonly connections: number;
  /** Rows in /proc/net/tcp during the run. */
  readonly tableRows: number;
  readonly medianUs: number;
  readonly p90Us: number;
  /** Lookups that found this process's uid (all of them, or the check is broken). */
  readonly found: number;
}

export async function peerLookup(options: { connections: number }): Promise<PeerResult> {
  const accepted: Socket[] = [];
  const server = createServer((socket) => accepted.push(socket));
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const clients: Socket[] = [];
  for (let i = 0; i < options.connections; i++) {
    const client = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    clients.push(client);
  }
  while (accepted.length < options.connections) await new Promise((r) => setImmediate(r));
  const uid = process.getuid?.() ?? -1;
  const timings: number[] = [];
  let found = 0;
  for (const socket of accepted) {
    const started = process.hrtime.bigint();
    const peer = await lookupPeerUid(socket, (file) => readFile(file, 'latin1'));
    timings.push(Number(process.hrtime.bigint() - started) / 1000);
    if (peer === uid) found++;
  }
  const tableRows = (await readFile('/proc/net/tcp', 'latin1')).split('\n').length - 2;
  for (const c of clients) c.destroy();
  for (const s of accepted) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  timings.sort((a, b) => a - b);
  const at = (q: number) => timings[Math.min(timings.length - 1, Math.floor(q * timings.length))] ?? 0;
  return { connections: options.connections, tableRows, medianUs: at(0.5), p90Us: at(0.9), found };
}

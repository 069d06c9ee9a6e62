/**
 * The Node ceiling: the fastest a Node HTTP server can answer on this machine. A bare node:http
 * server on 127.0.0.1 that answers every request with one constant JSON body of the size given
 * as the first argument, and prints its URL on the first line of stdout. The benchmark runs it as
 * a child beside the daemon, under the same load generator, and reports the daemon as a fraction
 * of it.
 */
import { createServer } from 'node:http';

/** `{"pad":"xxx…"}` of exactly `bytes` bytes (at least the 10 the braces and key take). */
function constantJson(bytes: number): Buffer {
  const frame = '{"pad":""}';
  return Buffer.from(`{"pad":"${'x'.repeat(Math.max(0, bytes - frame.length))}"}`);
}

const body = constantJson(Number(process.argv[2] ?? 0));
const server = createServer((_request, response) => {
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  response.end(body);
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`http://127.0.0.1:${port}\n`);
});
const stop = (): void => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

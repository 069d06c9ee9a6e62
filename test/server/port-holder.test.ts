/** Who holds a port, from /proc: uid, user, pid and command where /proc shows them. */
import { createServer } from 'node:net';
import t from 'tap';
import { describeHolder, findPortHolder, portInUse } from '../../src/server/port-holder.js';

t.test('a port this process listens on: its pid, command and user', async (t) => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const holder = findPortHolder(port);
  const uid = process.getuid?.() ?? 0;
  t.match(holder, { uid, pid: process.pid, command: 'node' });
  t.equal(
    describeHolder({ uid: 1001, user: 'bob', pid: null, command: null }),
    'a process of user bob (uid 1001)',
    'without the pid (another user, seen by a non-root process)',
  );

  const err = portInUse(Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' }), '::1', port, '/c.toml');
  t.match(err, {
    message: new RegExp(`^\\[::1\\]:${port} is already in use by pid ${process.pid} \\(node\\) of `),
    exitCode: 75,
  });
  t.match((err as Error).message, /; stop that program, or set server\.port in \/c\.toml to a free port\.$/);
  const other = new Error('EACCES');
  t.equal(portInUse(other, '127.0.0.1', port, '/c.toml'), other, 'other errors pass through');
  server.close();
  await new Promise((resolve) => server.once('close', resolve));
  t.equal(findPortHolder(port), null, 'nobody listens: null');
});

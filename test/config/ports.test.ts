/**
 * Two users, zero configuration (#12): each user's default port is their own and stable, so two
 * users' daemons start side by side with no config file at all; a port someone else holds is one
 * sentence naming the holder, exit 75.
 */
import { join } from 'node:path';
import t from 'tap';
import { APP, dataPaths } from '../../src/config/paths.js';
import { defaultPort, SYSTEM_PORT } from '../../src/config/ports.js';
import { type Home, makeHome, runCli, runProgram, spawnServe, startServe } from '../helpers/daemon.js';
import { type TestUser, throwawayUser } from '../helpers/users.js';

t.test('the default port: 9460 for system accounts, 61000 + uid mod 4000 for users', async (t) => {
  t.equal(SYSTEM_PORT, 9460);
  t.equal(defaultPort(0), 9460, 'root');
  t.equal(defaultPort(999), 9460, 'a system account (the system service)');
  t.equal(defaultPort(1000), 62000);
  t.equal(defaultPort(1001), 62001);
  t.equal(defaultPort(4999), 61999);
  t.equal(defaultPort(65534), 62534, 'nobody');
  for (let uid = 1000; uid < 70_000; uid += 997) {
    const port = defaultPort(uid);
    t.ok(port >= 61000 && port <= 64999, `uid ${uid}: ${port}, above Linux's ephemeral range`);
  }
  t.equal(defaultPort(1234), defaultPort(1234), 'stable');
});

/** The user's own installation, with no config file: every setting is a default. */
function homeOf(user: TestUser): Home {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: user.home,
    XDG_CONFIG_HOME: join(user.home, '.config'),
    XDG_DATA_HOME: join(user.home, '.local', 'share'),
  };
  const paths = dataPaths(join(env.XDG_DATA_HOME, APP));
  return {
    root: user.home,
    env,
    configFile: join(env.XDG_CONFIG_HOME, APP, 'config.toml'),
    paths,
    runtimeFile: join(paths.dataDir, 'daemon.json'),
  };
}

t.test("two users' daemons start side by side with the defaults; a held port is named", async (t) => {
  const alice = throwawayUser(t, 'credd-loc-a');
  const bob = throwawayUser(t, 'credd-loc-b');
  if (!alice || !bob) return;
  const aliceHome = homeOf(alice);
  const bobHome = homeOf(bob);
  const both = [
    { user: alice, home: aliceHome },
    { user: bob, home: bobHome },
  ];
  for (const { user, home } of both) {
    const init = await runCli(home, ['init'], { runAs: user.runAs });
    t.equal(init.code, 0, `${user.name}: init (${init.stderr})`);
  }
  const [a, b] = await Promise.all([
    startServe(aliceHome, { t, runAs: alice.runAs }),
    startServe(bobHome, { t, runAs: bob.runAs }),
  ]);
  t.equal(a.url, `http://127.0.0.1:${defaultPort(alice.uid)}`, `${alice.name} on the port of uid ${alice.uid}`);
  t.equal(b.url, `http://127.0.0.1:${defaultPort(bob.uid)}`, `${bob.name} on the port of uid ${bob.uid}`);
  t.not(a.url, b.url);
  for (const [{ user, home }, daemon] of [
    [both[0]!, a],
    [both[1]!, b],
  ] as const) {
    const status = await runCli(home, ['status'], { runAs: user.runAs });
    t.equal(status.code, 0, `${user.name}: status answers from their own daemon (${status.stderr})`);
    t.match(status.stdout, `Daemon: running (pid ${daemon.pid}), serving ${daemon.url}.`);
  }

  // Bob, told to use alice's port: one sentence, the holder's user (bob cannot see her pid), exit 75.
  const bobConfig = join(bob.home, '.config', APP, 'config.toml');
  const write = await runProgram(bob.runAs[0]!, [
    ...bob.runAs.slice(1),
    'sh',
    '-c',
    `mkdir -p "$(dirname "$0")" && printf '[server]\\nport = %s\\n' "$1" > "$0"`,
    bobConfig,
    String(defaultPort(alice.uid)),
  ]);
  t.equal(write.code, 0, write.stderr);
  await b.stop();
  const refused = spawnServe(bobHome, { runAs: bob.runAs });
  const exit = await refused.exited;
  t.equal(exit.code, 75, 'exit 75 (EX_TEMPFAIL)');
  t.match(
    refused.output(),
    `eodh-credd: 127.0.0.1:${defaultPort(alice.uid)} is already in use by a process of user ${alice.name} (uid ${alice.uid}); stop that program, or set server.port in ${bobConfig} to a free port.\n`,
  );
  t.notMatch(refused.output(), /internal error|EADDRINUSE/);

  // Root can read every process's files, so it sees the pid as well.
  const rootHome = makeHome(t, { config: `[server]\nport = ${defaultPort(alice.uid)}\n` });
  t.equal((await runCli(rootHome, ['init'])).code, 0);
  const asRoot = spawnServe(rootHome);
  t.equal((await asRoot.exited).code, 75);
  t.match(
    asRoot.output(),
    `is already in use by pid ${a.pid} (node) of user ${alice.name} (uid ${alice.uid}); stop that program, or set server.port in ${rootHome.configFile} to a free port.`,
  );
  await a.stop();
});

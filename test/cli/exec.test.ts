/**
 * `eodh-credd exec <ws> -- CMD ARGS…`: the command gets argv unchanged and the workspace's
 * variables (and not the variables that would shadow them); its exit status is ours; a signal
 * sent to us reaches it, and when a signal ends it we end by the same signal.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import t from 'tap';
import { startHubSimulator } from '../../src/hub-sim/app.js';
import { HubSimulatorClient } from '../../src/hub-sim/client.js';
import { CLI, makeHome, runCli } from '../helpers/daemon.js';

const sim = await startHubSimulator({});
t.teardown(() => sim.close());
// A fixed port: `env` needs no running daemon to say where it listens.
const home = makeHome(t, { config: '[server]\nport = 19471\n' });
{
  await runCli(home, ['init']);
  const key = await new HubSimulatorClient(sim.url).createKey('ws', { expiresDays: 30 });
  const added = await runCli(home, ['workspace', 'add', 'ws', '--hub', sim.url, '--token-id', key.id], {
    stdin: key.token,
  });
  if (added.code !== 0) throw new Error(added.stderr);
}

t.test('argv and the exit status pass through; the variables are set', async (t) => {
  const out = await runCli(
    home,
    [
      'exec',
      'ws',
      '--',
      'sh',
      '-c',
      'printf "[%s]\\n" "$@"; env | grep ^AWS_ | sort; exit 7',
      'sh',
      'a b',
      '--help',
      '',
    ],
    { env: { AWS_ACCESS_KEY_ID: 'AKIASHADOW', AWS_PROFILE: 'personal' } },
  );
  t.equal(out.code, 7, out.stderr);
  const lines = out.stdout.trim().split('\n');
  t.same(lines.slice(0, 3), ['[a b]', '[--help]', '[]'], 'arguments, options of the command included, unchanged');
  const vars = Object.fromEntries(lines.slice(3).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  t.equal(vars.AWS_CONTAINER_CREDENTIALS_FULL_URI, 'http://127.0.0.1:19471/v1/workspaces/ws/credentials');
  t.match(vars.AWS_CONTAINER_AUTHORIZATION_TOKEN, /^[A-Za-z0-9_-]{43}$/);
  t.equal(vars.AWS_REGION, 'eu-west-2');
  t.notOk('AWS_ACCESS_KEY_ID' in vars, 'keys that would shadow the daemon are removed');
  t.notOk('AWS_PROFILE' in vars);
  t.equal((await runCli(home, ['exec', 'ws', '--', 'true'])).code, 0);
  const missing = await runCli(home, ['exec', 'ws', '--', 'no-such-command-here']);
  t.equal(missing.code, 127);
  t.match(missing.stderr, /command not found/);
  const file = await runCli(home, [
    'exec',
    'ws',
    '--token',
    'file',
    '--',
    'sh',
    '-c',
    'echo $AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE',
  ]);
  t.match(file.stdout, /tokens\/ws\.token$/m);
});

t.test('signals: passed on, and a command killed by one ends us by the same', async (t) => {
  const killed = await runCli(home, ['exec', 'ws', '--', 'sh', '-c', 'kill -TERM $$']);
  t.equal(killed.signal, 'SIGTERM');

  const child = spawn(
    process.execPath,
    [
      CLI,
      'exec',
      'ws',
      '--',
      'sh',
      '-c',
      'trap "echo got-int; exit 42" INT; echo started; while :; do sleep 0.05; done',
    ],
    {
      env: { ...home.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  child.stdout.setEncoding('utf8');
  await new Promise<void>((resolve) =>
    child.stdout.on('data', (d: string) => {
      stdout += d;
      if (stdout.includes('started')) resolve();
    }),
  );
  child.kill('SIGINT');
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 42, 'the command got SIGINT and its exit status is ours');
  t.match(stdout, /got-int/);
});

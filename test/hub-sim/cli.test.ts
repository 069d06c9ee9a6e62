import t from 'tap';
import { UserError } from '../../src/core/errors.js';
import { parseHubSimArgs, runHubSim } from '../../src/hub-sim/cli.js';

t.test('parses options', async (t) => {
  t.match(parseHubSimArgs(['--port', '8123', '--s3-lifetime', '900', '--day-ms', '1000'], {}), {
    port: 8123,
    s3LifetimeSeconds: 900,
    dayMs: 1000,
    help: false,
  });
  t.same(parseHubSimArgs([], {}), { port: 0, help: false }, 'port defaults to an ephemeral one');
  const sts = parseHubSimArgs(
    ['--sts-endpoint', 'http://127.0.0.1:5000', '--role-arn', 'arn:aws:iam::123456789012:role/r'],
    {
      AWS_ACCESS_KEY_ID: 'AKID',
      AWS_SECRET_ACCESS_KEY: 'SECRET',
    },
  );
  t.same(sts.sts, {
    endpoint: 'http://127.0.0.1:5000',
    region: 'eu-west-2',
    roleArn: 'arn:aws:iam::123456789012:role/r',
    accessKeyId: 'AKID',
    secretAccessKey: 'SECRET',
  });
});

t.test('rejects bad arguments with usage errors', async (t) => {
  for (const argv of [
    ['--port', 'x'],
    ['--port', '70000'],
    ['--s3-lifetime', '0'],
    ['--bogus'],
    ['extra'],
    ['--role-arn', 'a'],
  ]) {
    t.throws(() => parseHubSimArgs(argv, {}), { name: 'UserError', exitCode: 64 }, argv.join(' '));
  }
  t.throws(
    () => parseHubSimArgs(['--sts-endpoint', 'http://127.0.0.1:1', '--role-arn', 'a'], {}),
    new UserError('--sts-endpoint needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment.', 78),
  );
});

t.test('runs, prints its URL on one line, serves, stops on abort', async (t) => {
  const lines: string[] = [];
  const stop = new AbortController();
  let printed!: () => void;
  const ready = new Promise<void>((resolve) => (printed = resolve));
  const running = runHubSim(['--port', '0', '--s3-lifetime', '120'], {
    env: {},
    signal: stop.signal,
    write: (line) => {
      lines.push(line);
      printed();
    },
  });
  await ready;
  t.equal(lines.length, 1);
  const url = lines[0]!;
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const res = await fetch(`${url}/_sim/stats`);
  t.equal(res.status, 200);
  stop.abort();
  await running;
  await t.rejects(fetch(`${url}/_sim/stats`), 'closed after stop');
});

t.test('--help prints usage without starting', async (t) => {
  const lines: string[] = [];
  await runHubSim(['--help'], { env: {}, write: (l) => lines.push(l) });
  t.match(lines, [/^usage: eodh-credd hub-sim/]);
});

/**
 * With `sts`, the simulator mints credentials through AssumeRole on an STS emulator, so they work
 * against it. Needs moto_server on PATH; skipped otherwise.
 */

import { spawn, spawnSync } from 'node:child_process';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import t, { type Test } from 'tap';
import { HubSimulatorClient, startHubSimulator } from '../../src/hub-sim/index.js';

const haveMoto = spawnSync('moto_server', ['--help'], { stdio: 'ignore' }).status === 0;

async function startMoto(t: Test): Promise<string> {
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', '0'], {
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    child.kill('SIGTERM');
  });
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      const m = /Running on (http:\/\/127\.0\.0\.1:\d+)/.exec(seen);
      if (m?.[1]) resolve(m[1]);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`moto_server exited (${code}): ${seen}`)));
    setTimeout(() => reject(new Error('moto_server did not start')), 30_000).unref();
  });
}

t.test('credentials come from STS AssumeRole', { skip: haveMoto ? false : 'moto_server not installed' }, async (t) => {
  const endpoint = await startMoto(t);
  const sim = await startHubSimulator({
    s3LifetimeSeconds: 900,
    sts: {
      endpoint,
      region: 'eu-west-2',
      accessKeyId: 'testing',
      secretAccessKey: 'testing',
      roleArn: 'arn:aws:iam::123456789012:role/workspace',
    },
  });
  t.teardown(() => sim.close());
  const key = await new HubSimulatorClient(sim.url).createKey('alpha', { user: 'ann' });
  const res = await fetch(`${sim.url}/api/workspaces/alpha/me/s3-tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key.token}` },
  });
  t.equal(res.status, 200);
  const c = (await res.json()) as Record<string, string>;
  t.match(c.accessKeyId, /^ASIA/);
  t.match(c.expiration, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const lifetime = Date.parse(c.expiration!) - Date.now();
  t.ok(lifetime > 800_000 && lifetime <= 900_000, `about 900 s (${lifetime} ms)`);

  const sts = new STSClient({
    endpoint,
    region: 'eu-west-2',
    credentials: { accessKeyId: c.accessKeyId!, secretAccessKey: c.secretAccessKey!, sessionToken: c.sessionToken! },
  });
  t.teardown(() => sts.destroy());
  const who = await sts.send(new GetCallerIdentityCommand({}));
  t.match(who.Arn, /assumed-role\/workspace\/alpha-ann$/, 'session name <workspace>-<user>');
});

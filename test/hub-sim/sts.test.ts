/**
 * With `sts`, the simulator mints credentials through AssumeRole on an STS emulator (moto, with
 * signatures and IAM policies enforced), so they work against it. Needs moto_server: skipped
 * without it, a failure under EODH_CREDD_REQUIRE_ALL_TOOLS=1.
 */

import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import t from 'tap';
import { HubSimulatorClient, startHubSimulator } from '../../src/hub-sim/index.js';
import { startMoto } from '../helpers/moto.js';
import { HINTS, motoServer, requireTool } from '../helpers/tools.js';

t.test('credentials come from STS AssumeRole', async (t) => {
  if (!requireTool(t, 'moto_server', motoServer(), HINTS.moto)) return;
  const moto = await startMoto(t);
  const sim = await startHubSimulator({
    s3LifetimeSeconds: 900,
    sts: {
      endpoint: moto.endpoint,
      region: moto.region,
      accessKeyId: moto.baseCredentials.accessKeyId,
      secretAccessKey: moto.baseCredentials.secretAccessKey,
      roleArn: moto.roleArn,
    },
  });
  t.teardown(() => sim.close());
  const key = await new HubSimulatorClient(sim.url).createKey('alpha', { user: 'ann' });
  const before = Date.now();
  const res = await fetch(`${sim.url}/api/workspaces/alpha/me/s3-tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key.token}` },
  });
  const after = Date.now();
  t.equal(res.status, 200);
  const c = (await res.json()) as Record<string, string>;
  t.match(c.accessKeyId, /^ASIA/);
  t.match(c.expiration, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  // 900 s from when the hub asked STS, which was between `before` and `after` (to the second).
  const expiresAt = Date.parse(c.expiration!);
  t.ok(
    expiresAt >= before - 1_000 + 900_000 && expiresAt <= after + 900_000,
    `900 s after the request (${expiresAt - before} ms after it started)`,
  );

  const sts = new STSClient({
    endpoint: moto.endpoint,
    region: moto.region,
    credentials: { accessKeyId: c.accessKeyId!, secretAccessKey: c.secretAccessKey!, sessionToken: c.sessionToken! },
  });
  t.teardown(() => sts.destroy());
  const who = await sts.send(new GetCallerIdentityCommand({}));
  t.equal(
    who.Arn,
    `arn:aws:sts::${moto.accountId}:assumed-role/eodh-workspace-s3/alpha-ann`,
    'session name <workspace>-<user>',
  );
  const forged = new STSClient({
    endpoint: moto.endpoint,
    region: moto.region,
    maxAttempts: 1,
    credentials: {
      accessKeyId: c.accessKeyId!,
      secretAccessKey: `${c.secretAccessKey}x`,
      sessionToken: c.sessionToken!,
    },
  });
  t.teardown(() => forged.destroy());
  await t.rejects(
    forged.send(new GetCallerIdentityCommand({})),
    { name: 'SignatureDoesNotMatch' },
    'moto checks the signature',
  );
});
